package chart

import (
	"bytes"
	"errors"
	"fmt"
	"image/color"
	"math"
	"sort"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// Geometry: 960 pixels wide, 480 per panel, at 96 DPI. Slack shows images
// up to 360 px tall in the message and full size on click; this stays legible in both.
const (
	dpi         = 96
	width       = 10 * vg.Inch
	panelHeight = 5 * vg.Inch
	// maxPeople bars are drawn; the rest are summed into one "N others" bar
	// so that a large org's chart stays readable.
	maxPeople = 20
)

// palette is Okabe & Ito's colour-blind-safe set, in a fixed order: the
// i-th policy by name always gets the same colour.
var palette = []color.RGBA{
	{0x00, 0x72, 0xB2, 0xFF}, // blue
	{0xE6, 0x9F, 0x00, 0xFF}, // orange
	{0x00, 0x9E, 0x73, 0xFF}, // bluish green
	{0xCC, 0x79, 0xA7, 0xFF}, // reddish purple
	{0x56, 0xB4, 0xE9, 0xFF}, // sky blue
	{0xD5, 0x5E, 0x00, 0xFF}, // vermillion
	{0xF0, 0xE4, 0x42, 0xFF}, // yellow
	{0x55, 0x55, 0x55, 0xFF}, // grey
}

// panel is a plot and its legend, drawn in a column at the right so that
// it never covers a bar.
type panel struct {
	p   *plot.Plot
	leg plot.Legend
}

func newPanel(title string) *panel {
	pn := &panel{p: newPlot(title), leg: plot.NewLegend()}
	pn.leg.TextStyle.Font = face(10)
	pn.leg.Top, pn.leg.Left = true, true
	pn.leg.Padding = vg.Points(3)
	return pn
}

// legendWidth is the right-hand column for the legend (about 210 px).
const legendWidth = 2.2 * vg.Inch

// AccessHoursPNG draws privileged access hours per person, one stacked
// segment per policy.
func AccessHoursPNG(d Data) ([]byte, error) {
	p, err := hoursPlot(d, d.Title)
	if err != nil {
		return nil, err
	}
	return render(p)
}

// DecisionTimesPNG draws each policy's median and p90 time from request to
// decision.
func DecisionTimesPNG(d Data) ([]byte, error) {
	p, err := waitsPlot(d, d.Title)
	if err != nil {
		return nil, err
	}
	return render(p)
}

// Report draws both panels, hours above waits, in one PNG (960×960).
func Report(d Data) ([]byte, error) {
	hp, err := hoursPlot(d, d.Title)
	if err != nil {
		return nil, err
	}
	wp, err := waitsPlot(d, "")
	if err != nil {
		return nil, err
	}
	return render(hp, wp)
}

func period(d Data) string {
	if d.From.IsZero() || d.To.IsZero() {
		return ""
	}
	// To is exclusive: a week from Monday 00:00 to the next Monday 00:00
	// reads "Mon to Sun".
	return fmt.Sprintf(", %s to %s", d.From.UTC().Format("2006-01-02"), d.To.UTC().Add(-time.Nanosecond).Format("2006-01-02"))
}

func heading(title, panel string) string {
	if title == "" {
		return panel
	}
	return title + "\n" + panel
}

func hoursPlot(d Data, title string) (*panel, error) {
	pn := newPanel(heading(title, "Privileged access hours by person and policy"+period(d)))
	p := pn.p
	p.X.Label.Text = "hours with access"
	for _, h := range d.Hours {
		if h.Hours < 0 || math.IsNaN(h.Hours) || math.IsInf(h.Hours, 0) {
			return nil, fmt.Errorf("chart: %s under %s: %v hours", h.Person, h.Policy, h.Hours)
		}
	}
	// People by total hours (most at the top), the tail summed.
	total := map[string]float64{}
	byPolicy := map[string]map[string]float64{}
	var policies []string
	for _, h := range d.Hours {
		total[h.Person] += h.Hours
		if byPolicy[h.Policy] == nil {
			byPolicy[h.Policy] = map[string]float64{}
			policies = append(policies, h.Policy)
		}
		byPolicy[h.Policy][h.Person] += h.Hours
	}
	sort.Strings(policies)
	people := make([]string, 0, len(total))
	for who := range total {
		people = append(people, who)
	}
	sort.Slice(people, func(i, j int) bool {
		if total[people[i]] != total[people[j]] {
			return total[people[i]] > total[people[j]]
		}
		return people[i] < people[j]
	})
	if len(people) == 0 {
		p.Title.Text += "\n(no privileged access in this period)"
		p.X.Min, p.X.Max = 0, 1
		p.NominalY("")
		return pn, nil
	}
	rows := people
	other := map[string]bool{}
	if len(people) > maxPeople {
		rows = append(append([]string(nil), people[:maxPeople-1]...), fmt.Sprintf("%d others", len(people)-maxPeople+1))
		for _, who := range people[maxPeople-1:] {
			other[who] = true
		}
	}
	// Horizontal bars are drawn bottom-up: reverse so the largest is on top.
	labels := make([]string, len(rows))
	for i, r := range rows {
		labels[len(rows)-1-i] = r
	}
	barWidth := vg.Length(math.Min(28, 260/float64(len(rows))))
	var below *plotter.BarChart
	for i, pol := range policies {
		vals := make(plotter.Values, len(rows))
		for who, h := range byPolicy[pol] {
			idx := indexOf(rows, who)
			if other[who] {
				idx = len(rows) - 1
			}
			vals[len(rows)-1-idx] += h
		}
		bar, err := plotter.NewBarChart(vals, barWidth)
		if err != nil {
			return nil, err
		}
		bar.Horizontal = true
		bar.Color = palette[i%len(palette)]
		bar.LineStyle.Width = 0
		if below != nil {
			bar.StackOn(below)
		}
		below = bar
		p.Add(bar)
		pn.leg.Add(pol, bar)
	}
	p.NominalY(labels...)
	p.Y.Min, p.Y.Max = -0.6, float64(len(rows))-0.4 // room above the top bar
	p.X.Min = 0
	p.X.Max *= 1.05
	p.Add(plotter.NewGrid())
	return pn, nil
}

func indexOf(xs []string, x string) int {
	for i, v := range xs {
		if v == x {
			return i
		}
	}
	return -1
}

func waitsPlot(d Data, title string) (*panel, error) {
	pn := newPanel(heading(title, "Time from request to decision by policy: median and 90th percentile"+period(d)))
	p := pn.p
	for _, w := range d.Waits {
		if w.Wait < 0 {
			return nil, fmt.Errorf("chart: a %s decision %s before its request", w.Policy, -w.Wait)
		}
	}
	sum := Summarize(d.Waits)
	if len(sum) == 0 {
		p.Title.Text += "\n(no decisions in this period)"
		p.Y.Min, p.Y.Max = 0, 1
		p.NominalX("")
		return pn, nil
	}
	var maxP90 time.Duration
	for _, s := range sum {
		maxP90 = max(maxP90, s.P90)
	}
	unit, unitName := time.Minute, "minutes"
	if maxP90 >= 3*time.Hour {
		unit, unitName = time.Hour, "hours"
	}
	p.Y.Label.Text = unitName + " from request to decision"
	med, p90 := make(plotter.Values, len(sum)), make(plotter.Values, len(sum))
	labels := make([]string, len(sum))
	for i, s := range sum {
		med[i], p90[i] = float64(s.Median)/float64(unit), float64(s.P90)/float64(unit)
		labels[i] = fmt.Sprintf("%s\nn=%d", s.Policy, s.N)
	}
	barWidth := vg.Length(math.Min(40, 360/float64(len(sum))))
	for i, v := range []struct {
		name string
		vals plotter.Values
	}{{"median", med}, {"90th percentile", p90}} {
		bar, err := plotter.NewBarChart(v.vals, barWidth)
		if err != nil {
			return nil, err
		}
		bar.Color = palette[i]
		bar.LineStyle.Width = 0
		bar.Offset = barWidth * vg.Length(2*i-1) / 2
		p.Add(bar)
		pn.leg.Add(v.name, bar)
		xys := make(plotter.XYs, len(v.vals))
		text := make([]string, len(v.vals))
		for j, y := range v.vals {
			xys[j] = plotter.XY{X: float64(j), Y: y}
			text[j] = short(time.Duration(y * float64(unit)))
		}
		lbl, err := plotter.NewLabels(plotter.XYLabels{XYs: xys, Labels: text})
		if err != nil {
			return nil, err
		}
		for k := range lbl.TextStyle {
			lbl.TextStyle[k].Font = face(9)
			lbl.TextStyle[k].XAlign = draw.XCenter
		}
		lbl.Offset = vg.Point{X: bar.Offset, Y: vg.Points(3)}
		p.Add(lbl)
	}
	p.NominalX(labels...)
	p.X.Min, p.X.Max = -0.6, float64(len(sum))-0.4 // room for the outer bars
	p.Y.Min = 0
	p.Y.Max *= 1.12 // room for the value labels
	p.Add(plotter.NewGrid())
	return pn, nil
}

// short formats a wait for a bar label: "45s", "12m", "3.5h", "2.1d".
func short(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%.0fs", d.Seconds())
	case d < time.Hour:
		return fmt.Sprintf("%.0fm", d.Minutes())
	case d < 48*time.Hour:
		return fmt.Sprintf("%.1fh", d.Hours())
	}
	return fmt.Sprintf("%.1fd", d.Hours()/24)
}

// face is the one typeface, Liberation Sans, embedded in gonum/plot: no
// system font is looked up, so the output is the same everywhere.
func face(size vg.Length) font.Font {
	return font.Font{Typeface: "Liberation", Variant: "Sans", Size: size}
}

func newPlot(title string) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.Title.TextStyle.Font = face(13)
	p.Title.Padding = vg.Points(6)
	for _, a := range []*plot.Axis{&p.X, &p.Y} {
		a.Label.TextStyle.Font = face(11)
		a.Tick.Label.Font = face(10)
	}
	p.Legend.TextStyle.Font = face(10)
	return p
}

// render draws the panels stacked, one per row, into a PNG: each plot on
// the left, its legend in a column on the right.
func render(panels ...*panel) ([]byte, error) {
	if len(panels) == 0 {
		return nil, errors.New("chart: nothing to draw")
	}
	c := vgimg.NewWith(vgimg.UseWH(width, panelHeight*vg.Length(len(panels))), vgimg.UseDPI(dpi))
	dc := draw.New(c)
	pad := vg.Points(12)
	tiles := draw.Tiles{Rows: len(panels), Cols: 1, PadTop: pad, PadBottom: pad, PadLeft: pad, PadRight: pad, PadY: 2 * pad}
	grid := make([][]*plot.Plot, len(panels))
	for i, pn := range panels {
		grid[i] = []*plot.Plot{pn.p}
	}
	// Align on the canvas minus the legend column, so the panels' axes line up.
	canvases := plot.Align(grid, tiles, draw.Crop(dc, 0, -legendWidth, 0, 0))
	for i, pn := range panels {
		cv := canvases[i][0]
		pn.p.Draw(cv)
		// The legend starts level with the plot area's top, right of it.
		top := cv.Max.Y - pn.p.Title.TextStyle.Height(pn.p.Title.Text) - pn.p.Title.Padding
		legend := draw.Canvas{Canvas: cv.Canvas, Rectangle: vg.Rectangle{
			Min: vg.Point{X: cv.Max.X + pad, Y: cv.Min.Y}, Max: vg.Point{X: cv.Max.X + legendWidth, Y: top}}}
		pn.leg.Draw(legend)
	}
	var buf bytes.Buffer
	if _, err := (vgimg.PngCanvas{Canvas: c}).WriteTo(&buf); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
