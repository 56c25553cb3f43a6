package main

import (
	"io"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// progress reports long command-line work (export of a million rows, audit
// verify, backup) on stderr. It draws a bar only when stderr is a terminal,
// and nothing otherwise (CI, pipes, files), so outputs stay byte-identical.
type progress struct {
	bar *progressbar.ProgressBar
}

// isTerminal reports whether w is a terminal; a variable so a test can
// stand in for one.
var isTerminal = func(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// newProgress starts a bar over total units (-1: unknown, a spinner) that
// counts what; bytes says the units are bytes.
func newProgress(stderr io.Writer, total int64, what string, bytes bool) *progress {
	if !isTerminal(stderr) {
		return &progress{}
	}
	opts := []progressbar.Option{
		progressbar.OptionSetWriter(stderr),
		progressbar.OptionSetDescription(what),
		progressbar.OptionThrottle(100 * time.Millisecond),
		progressbar.OptionShowCount(),
		progressbar.OptionSetWidth(30),
		progressbar.OptionClearOnFinish(),
		progressbar.OptionSetRenderBlankState(true),
	}
	if bytes {
		opts = append(opts, progressbar.OptionShowBytes(true))
	} else {
		opts = append(opts, progressbar.OptionShowIts(), progressbar.OptionSetItsString(what))
	}
	return &progress{bar: progressbar.NewOptions64(total, opts...)}
}

// Add counts n more units.
func (p *progress) Add(n int) {
	if p.bar != nil {
		_ = p.bar.Add(n)
	}
}

// Set moves the bar to n units done.
func (p *progress) Set(n int64) {
	if p.bar != nil {
		_ = p.bar.Set64(n)
	}
}

// Done clears the bar.
func (p *progress) Done() {
	if p.bar != nil {
		_ = p.bar.Finish()
	}
}

// Writer counts the bytes written through w.
func (p *progress) Writer(w io.Writer) io.Writer {
	if p.bar == nil {
		return w
	}
	return io.MultiWriter(w, p.bar)
}

// Lines counts the lines written through w (CSV rows, near enough: a quoted
// cell with a line break counts twice).
func (p *progress) Lines(w io.Writer) io.Writer {
	if p.bar == nil {
		return w
	}
	return lineCounter{w: w, p: p}
}

type lineCounter struct {
	w io.Writer
	p *progress
}

func (l lineCounter) Write(b []byte) (int, error) {
	n, err := l.w.Write(b)
	lines := 0
	for _, c := range b[:n] {
		if c == '\n' {
			lines++
		}
	}
	l.p.Add(lines)
	return n, err
}
