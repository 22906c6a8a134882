// Package report renders a migration's state as one self-contained HTML
// page: the datasets, a chart of how the passes converge (inline SVG), the
// predicted final window and the last verification of each dataset. No
// scripts, no fonts or images from the network.
package report

import (
	"fmt"
	"html/template"
	"io"
	"math"
	"strings"
	"time"

	"github.com/msync/msync/estimate"
	"github.com/msync/msync/record"
)

// Data is what the page shows.
type Data struct {
	Title     string
	Plan      string // plan file, if any
	Generated time.Time
	Datasets  []Dataset
	// Window is the predicted final pass; nil before there are catch-ups.
	Window *Window
}

// Dataset is one dataset's history.
type Dataset struct {
	Name, Class, Source, Dest string
	Passes                    []record.Pass
	Verify                    *record.Verify
	Estimate                  *estimate.Prediction
	EstimateErr               string
}

// Window is the predicted final pass of all datasets.
type Window struct {
	Total, Low, High time.Duration
	Gap              string // how the gap was chosen
	Parallel         int
}

// Chart sizes (the test renders the page and checks the chart's extent).
const (
	ChartWidth  = 720
	ChartHeight = 260
	// BarColor fills the bars of changed paths.
	BarColor = "#3b6fd8"
	// LineColor draws the pass durations.
	LineColor = "#e07b00"
	// BytesColor draws the bytes copied (dashed).
	BytesColor = "#2e9e44"
)

type passRow struct {
	N        int
	Kind     string
	Start    string
	Gap      string
	Took     string
	Changed  int64
	Deleted  int64
	Data     string
	Result   string
	Bad      bool
	Duration time.Duration
}

type dsView struct {
	Dataset
	Rows       []passRow
	Verdict    string
	VerdictCls string
	VerifyNote string
	Queue      string
	Last       string
	Est        string
	Dominant   string
}

type view struct {
	Data
	Sets      []dsView
	Chart     template.HTML
	WindowStr string
	RangeStr  string
	Generated string
	AllGreen  bool
}

// Write renders the page.
func Write(w io.Writer, d Data) error {
	v := view{Data: d, Generated: d.Generated.Local().Format("2006-01-02 15:04 MST"), AllGreen: len(d.Datasets) > 0}
	for _, ds := range d.Datasets {
		dv := dsView{Dataset: ds}
		for i, p := range ds.Passes {
			dv.Rows = append(dv.Rows, row(i+1, p))
		}
		if n := len(ds.Passes); n > 0 {
			last := ds.Passes[n-1]
			dv.Last = last.End.Local().Format("01-02 15:04")
			if last.Queue != nil {
				dv.Queue = fmt.Sprintf("%d queued at source, %d at destination", last.Queue.Src, last.Queue.Dst)
			}
		}
		dv.Verdict, dv.VerdictCls, dv.VerifyNote = verdict(ds)
		if dv.VerdictCls != "ok" {
			v.AllGreen = false
		}
		if p := ds.Estimate; p != nil {
			dv.Est = fmt.Sprintf("%s (%s – %s)", short(p.Total), short(p.Low), short(p.High))
			dv.Dominant = p.Explain()
		} else {
			dv.Est = "–"
			dv.Dominant = ds.EstimateErr
		}
		v.Sets = append(v.Sets, dv)
	}
	if win := d.Window; win != nil {
		v.WindowStr = short(win.Total)
		v.RangeStr = fmt.Sprintf("%s – %s", short(win.Low), short(win.High))
	}
	v.Chart = chart(d.Datasets)
	return page.Execute(w, v)
}

func verdict(ds Dataset) (text, cls, note string) {
	vr := ds.Verify
	if vr == nil {
		return "not verified", "none", "run msync verify"
	}
	when := vr.Time.Local().Format("01-02 15:04")
	if !vr.Identical {
		return "DIFFERENT", "bad", fmt.Sprintf("%s: %d differ, %d missing, %d extra, %d unreadable", when, vr.Differ, vr.Missing, vr.Extra, vr.Errors)
	}
	if n := len(ds.Passes); n > 0 && ds.Passes[n-1].Start.After(vr.Time) {
		return "identical, then changed", "stale", fmt.Sprintf("verified %s; a pass ran since: verify again", when)
	}
	note = fmt.Sprintf("%s: %d paths, %s hashed", when, vr.Same, bytes(vr.Bytes))
	if vr.Held > 0 {
		note += fmt.Sprintf(", %d left behind as planned", vr.Held)
	}
	if len(vr.NotCompared) > 0 {
		note += "; not compared: " + strings.Join(vr.NotCompared, "; ")
		return "IDENTICAL in what was compared", "ok", note
	}
	return "IDENTICAL", "ok", note
}

func row(n int, p record.Pass) passRow {
	r := passRow{N: n, Kind: p.Kind, Start: p.Start.Local().Format("01-02 15:04:05"), Took: short(p.Duration), Duration: p.Duration,
		Changed: p.Changed(), Deleted: p.Stats.Deleted, Data: bytes(p.Stats.DataBytes), Gap: "–", Result: "ok"}
	if p.GapSeconds > 0 {
		r.Gap = short(time.Duration(p.GapSeconds * float64(time.Second)))
	}
	switch {
	case !p.OK:
		r.Result, r.Bad = fmt.Sprintf("%d failed", p.Stats.Failed), true
	case p.Quiet != nil && !*p.Quiet:
		r.Result, r.Bad = "source NOT quiet", true
	case p.Quiet != nil:
		r.Result = "source quiet"
	}
	if p.DryRun {
		r.Result += " (dry run)"
	}
	return r
}

// chart draws, per pass number, the changed paths of all datasets (bars,
// left scale) and the longest dataset's pass duration (line, right scale).
func chart(ds []Dataset) template.HTML {
	n := 0
	for _, d := range ds {
		n = max(n, len(d.Passes))
	}
	changed := make([]float64, n)
	took := make([]float64, n)
	data := make([]float64, n)
	for _, d := range ds {
		for i, p := range d.Passes {
			changed[i] += float64(p.Changed())
			data[i] += float64(p.Stats.DataBytes)
			took[i] = math.Max(took[i], p.Duration.Seconds())
		}
	}
	const left, right, top, bottom = 64, 64, 28, 40
	pw, ph := float64(ChartWidth-left-right), float64(ChartHeight-top-bottom)
	var b strings.Builder
	fmt.Fprintf(&b, `<svg id="convergence" xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" role="img" aria-label="changed paths and pass duration per pass">`,
		ChartWidth, ChartHeight, ChartWidth, ChartHeight)
	fmt.Fprintf(&b, `<rect x="0" y="0" width="%d" height="%d" fill="#ffffff"/>`, ChartWidth, ChartHeight)
	if n == 0 {
		fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle" fill="#666">no passes yet</text></svg>`, ChartWidth/2, ChartHeight/2)
		return template.HTML(b.String())
	}
	maxC, maxT, maxB := 1.0, 0.001, 1.0
	for i := range n {
		maxC, maxT, maxB = math.Max(maxC, changed[i]), math.Max(maxT, took[i]), math.Max(maxB, data[i])
	}
	// Bytes copied share the log scale's shape, against their own maximum.
	by := func(v float64) float64 { return top + ph - ph*math.Log10(1+v)/math.Log10(1+maxB) }
	// Changed paths on a log scale: the initial pass dwarfs the rest.
	ly := func(v float64) float64 { return top + ph - ph*math.Log10(1+v)/math.Log10(1+maxC) }
	ty := func(v float64) float64 { return top + ph - ph*v/maxT }
	fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#999"/>`, left, top+ph, left+pw, top+ph)
	for _, frac := range []float64{0, 0.5, 1} {
		v := math.Pow(10, frac*math.Log10(1+maxC)) - 1
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end" font-size="11" fill="%s">%.0f</text>`, left-6, ly(v)+4, BarColor, v)
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" font-size="11" fill="%s">%s</text>`, left+pw+6, ty(frac*maxT)+4, LineColor, short(time.Duration(frac*maxT*float64(time.Second))))
	}
	slot := pw / float64(n)
	bw := math.Max(2, slot*0.6)
	var pts, bpts []string
	for i := range n {
		x := left + slot*float64(i) + slot/2
		y := ly(changed[i])
		fmt.Fprintf(&b, `<rect class="bar" x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>pass %d: %.0f changed paths</title></rect>`,
			x-bw/2, y, bw, top+ph-y, BarColor, i+1, changed[i])
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle" font-size="11" fill="#333">%d</text>`, x, top+ph+16, i+1)
		pts = append(pts, fmt.Sprintf("%.1f,%.1f", x, ty(took[i])))
		bpts = append(bpts, fmt.Sprintf("%.1f,%.1f", x, by(data[i])))
	}
	fmt.Fprintf(&b, `<polyline class="bytes" points="%s" fill="none" stroke="%s" stroke-width="2" stroke-dasharray="6 4"><title>bytes copied per pass (log scale, top = %s)</title></polyline>`,
		strings.Join(bpts, " "), BytesColor, bytes(int64(maxB)))
	fmt.Fprintf(&b, `<polyline points="%s" fill="none" stroke="%s" stroke-width="3"/>`, strings.Join(pts, " "), LineColor)
	for _, p := range pts {
		xy := strings.Split(p, ",")
		fmt.Fprintf(&b, `<circle cx="%s" cy="%s" r="4" fill="%s"/>`, xy[0], xy[1], LineColor)
	}
	fmt.Fprintf(&b, `<text x="%d" y="16" font-size="12" fill="%s">changed paths (log scale)</text>`, left-40, BarColor)
	fmt.Fprintf(&b, `<text x="%d" y="16" text-anchor="end" font-size="12" fill="%s">pass duration</text>`, ChartWidth-8, LineColor)
	fmt.Fprintf(&b, `<text x="%.1f" y="16" text-anchor="middle" font-size="12" fill="%s">- - bytes copied (log, top %s)</text>`, left+pw/2, BytesColor, bytes(int64(maxB)))
	fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle" font-size="12" fill="#333">pass</text>`, left+pw/2, ChartHeight-6)
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

// Duration formats d briefly: 850ms, 4.2s, 3m05s, 2h10m, 3d04h.
func Duration(d time.Duration) string {
	switch {
	case d <= 0:
		return "0s"
	case d < time.Second:
		return fmt.Sprintf("%dms", d.Milliseconds())
	case d < time.Minute:
		return fmt.Sprintf("%.1fs", d.Seconds())
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd%02dh", int(d.Hours())/24, int(d.Hours())%24)
}

func short(d time.Duration) string { return Duration(d) }

// Bytes formats n briefly in binary units.
func Bytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

func bytes(n int64) string { return Bytes(n) }

var page = template.Must(template.New("report").Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{{.Title}}</title>
<style>
body { font: 14px/1.45 system-ui, sans-serif; margin: 24px 32px; color: #222; background: #fafafa; }
h1 { font-size: 22px; margin: 0 0 4px; }
.sub { color: #666; margin-bottom: 20px; }
.cards { display: flex; gap: 16px; flex-wrap: wrap; margin-bottom: 20px; }
.card { background: #fff; border: 1px solid #ddd; border-radius: 8px; padding: 12px 18px; min-width: 220px; }
.card .big { font-size: 28px; font-weight: 600; }
table { border-collapse: collapse; background: #fff; margin-bottom: 16px; }
th, td { border: 1px solid #ddd; padding: 4px 10px; text-align: left; vertical-align: top; }
th { background: #f0f0f0; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.ok { background: #d8f5d8; color: #11650f; font-weight: 600; }
.bad { background: #fbd5d5; color: #9b1111; font-weight: 600; }
.stale { background: #fff0c2; color: #7a5a00; font-weight: 600; }
.none { background: #eee; color: #555; }
details { margin-bottom: 8px; }
code { font-size: 12px; }
</style>
</head>
<body>
<h1>{{.Title}}</h1>
<div class="sub">{{if .Plan}}plan <code>{{.Plan}}</code> · {{end}}generated {{.Generated}} by msync</div>
<div class="cards">
<div class="card" id="window"><div>Predicted final pass</div>
{{if .WindowStr}}<div class="big">{{.WindowStr}}</div><div>range {{.RangeStr}}{{with .Window}}, {{.Gap}}{{if gt .Parallel 1}}, {{.Parallel}} datasets at a time{{end}}{{end}}</div>
{{else}}<div class="big">–</div><div>needs catch-up passes first</div>{{end}}</div>
<div class="card" id="verdict"><div>Verification</div>
{{if .AllGreen}}<div class="big ok">IDENTICAL</div><div>every dataset verified after its last pass</div>
{{else}}<div class="big">not yet</div><div>see the datasets below</div>{{end}}</div>
</div>

<h2>Convergence</h2>
<p>Changed paths per pass (all datasets, bars), bytes copied (dashed) and the longest dataset's pass duration (line).</p>
<figure>{{.Chart}}</figure>

<h2>Datasets</h2>
<table id="datasets">
<tr><th>dataset</th><th>class</th><th>source → destination</th><th>passes</th><th>last pass</th><th>final pass (range)</th><th>dominated by</th><th>last verify</th></tr>
{{range .Sets}}<tr>
<td>{{.Name}}</td><td>{{.Class}}</td><td><code>{{.Source}}</code> → <code>{{.Dest}}</code>{{if .Queue}}<br>{{.Queue}}{{end}}</td>
<td class="num">{{len .Passes}}</td><td>{{.Last}}</td><td>{{.Est}}</td><td>{{.Dominant}}</td>
<td class="{{.VerdictCls}}">{{.Verdict}}<br><small>{{.VerifyNote}}</small></td>
</tr>
{{end}}</table>

<h2>Passes</h2>
{{range .Sets}}<details{{if eq (len $.Sets) 1}} open{{end}}><summary>{{.Name}} ({{len .Passes}} passes)</summary>
<table>
<tr><th>#</th><th>kind</th><th>started</th><th>gap</th><th>took</th><th>changed</th><th>deleted</th><th>data</th><th>result</th></tr>
{{range .Rows}}<tr><td class="num">{{.N}}</td><td>{{.Kind}}</td><td>{{.Start}}</td><td class="num">{{.Gap}}</td><td class="num">{{.Took}}</td>
<td class="num">{{.Changed}}</td><td class="num">{{.Deleted}}</td><td class="num">{{.Data}}</td><td{{if .Bad}} class="bad"{{end}}>{{.Result}}</td></tr>
{{end}}</table></details>
{{end}}
</body>
</html>
`))
