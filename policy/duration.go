package policy

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
)

// Duration units of the policy file. Days and weeks are fixed 24h and 7×24h
// spans: a grant is a span of time, not a calendar date, so DST does not
// stretch it.
var durationUnits = []struct {
	suffix byte
	d      time.Duration
}{
	{'w', 7 * 24 * time.Hour},
	{'d', 24 * time.Hour},
	{'h', time.Hour},
	{'m', time.Minute},
	{'s', time.Second},
}

// ParseDuration reads a policy duration: whole numbers with the units w, d,
// h, m and s, largest unit first, each at most once ("4h", "30d", "1d12h",
// "1w2d"). Zero, negative, fractional and unit-less values are refused.
func ParseDuration(s string) (time.Duration, error) {
	in := s
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, errors.New("empty duration (write e.g. 4h, 30d, 1d12h; units s, m, h, d, w)")
	}
	var total time.Duration
	next := 0 // index into durationUnits of the next unit allowed
	for s != "" {
		i := 0
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		if i == 0 {
			if s[0] == '-' {
				return 0, fmt.Errorf("%q: a duration cannot be negative", in)
			}
			return 0, fmt.Errorf("%q: expected a whole number before each unit (units s, m, h, d, w)", in)
		}
		if i == len(s) {
			return 0, fmt.Errorf("%q: %s has no unit (units s, m, h, d, w)", in, s)
		}
		unit := -1
		for k, u := range durationUnits {
			if s[i] == u.suffix {
				unit = k
			}
		}
		if s[i] == '.' || s[i] == ',' {
			return 0, fmt.Errorf("%q: whole numbers only; write 1h30m rather than 1.5h", in)
		}
		if unit < 0 {
			return 0, fmt.Errorf("%q: unknown unit %q (units s, m, h, d, w)", in, s[i:i+1])
		}
		if unit < next {
			return 0, fmt.Errorf("%q: write units largest first, each once (e.g. 1d12h)", in)
		}
		next = unit + 1
		var n int64
		for _, c := range s[:i] {
			if n > (math.MaxInt64-9)/10 {
				return 0, fmt.Errorf("%q: too long", in)
			}
			n = n*10 + int64(c-'0')
		}
		u := durationUnits[unit].d
		if n > int64(math.MaxInt64/u) || total > math.MaxInt64-time.Duration(n)*u {
			return 0, fmt.Errorf("%q: too long", in)
		}
		total += time.Duration(n) * u
		s = s[i+1:]
	}
	if total <= 0 {
		return 0, fmt.Errorf("%q: a duration must be longer than zero", in)
	}
	return total, nil
}

// FormatDuration writes d in the policy file's units, largest first:
// 4h, 30d, 1w2d, 90m -> 1h30m. Weeks are used only below 28 days: people
// write month-like spans as days (30d, 90d), and "12w6d" would read worse
// than the "90d" that is in the file. Parts below a second are written as
// time.Duration does.
func FormatDuration(d time.Duration) string {
	if d == 0 {
		return "0s"
	}
	if d < 0 {
		if d == math.MinInt64 {
			return d.String()
		}
		return "-" + FormatDuration(-d)
	}
	var b strings.Builder
	for _, u := range durationUnits {
		if u.suffix == 'w' && d >= 28*24*time.Hour {
			continue
		}
		if n := d / u.d; n > 0 {
			fmt.Fprintf(&b, "%d%c", n, u.suffix)
			d -= n * u.d
		}
	}
	if d > 0 {
		b.WriteString(d.String())
	}
	return b.String()
}
