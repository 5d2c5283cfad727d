package main

import (
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
	"time"
)

var opColors = map[op]color.RGBA{
	opSet:    {31, 119, 180, 255},
	opGet:    {255, 127, 14, 255},
	opInit:   {44, 160, 44, 255},
	opNotify: {214, 39, 40, 255},
	opCopy:   {0, 0, 0, 255},
}

var (
	white = color.RGBA{255, 255, 255, 255}
	black = color.RGBA{0, 0, 0, 255}
	grid  = color.RGBA{225, 225, 225, 255}
	dim   = color.RGBA{90, 90, 90, 255}
)

// writePlot draws the latency CDFs: one panel per number in flight, one
// curve per op (the baseline in black), latency on a log scale.
func writePlot(path string, r *report) error {
	const (
		left, top, pw, ph, gap = 80, 90, 400, 380, 70
		scale                  = 2
	)
	width := left + len(inFlight)*pw + (len(inFlight)-1)*gap + 40
	height := top + ph + 150
	img := image.NewRGBA(image.Rect(0, 0, width, height))
	fill(img, img.Bounds(), white)

	lo, hi := time.Duration(math.MaxInt64), time.Duration(0)
	for _, p := range r.latency {
		for _, d := range p.lat {
			lo, hi = min(lo, d), max(hi, d)
		}
	}
	title := "customrun latency, created to succeeded (cdf)"
	if r.quick {
		title += ", quick run"
	}
	drawText(img, left, 16, title, scale, black)
	drawText(img, left, 40, r.started.Format("2006-01-02 15:04")+". y: fraction of runs done", scale, dim)
	if hi == 0 {
		drawText(img, left, top, "no data", scale, black)
		return save(path, img)
	}
	dlo := math.Floor(math.Log10(float64(lo) / float64(time.Millisecond)))
	dhi := math.Ceil(math.Log10(float64(hi) / float64(time.Millisecond)))
	if dhi <= dlo {
		dhi = dlo + 1
	}
	for k, n := range inFlight {
		x0, y0 := left+k*(pw+gap), top
		xOf := func(d time.Duration) int {
			v := math.Log10(math.Max(float64(d)/float64(time.Millisecond), 1e-9))
			return x0 + int(math.Round((v-dlo)/(dhi-dlo)*float64(pw)))
		}
		yOf := func(f float64) int { return y0 + ph - int(math.Round(f*float64(ph))) }
		// grid: decades and 2, 5 in between; quarters
		for dec := dlo; dec <= dhi; dec++ {
			for _, m := range []float64{1, 2, 5} {
				v := m * math.Pow(10, dec)
				if dec+math.Log10(m) > dhi {
					break
				}
				x := xOf(time.Duration(v * float64(time.Millisecond)))
				line(img, x, y0, x, y0+ph, grid, 1)
				if m == 1 {
					label := fmt.Sprintf("%g", v)
					drawText(img, x-textWidth(label, scale)/2, y0+ph+10, label, scale, black)
				}
			}
		}
		for q := 0; q <= 4; q++ {
			y := yOf(float64(q) / 4)
			line(img, x0, y, x0+pw, y, grid, 1)
			if k == 0 {
				label := fmt.Sprintf("%g", float64(q)/4)
				drawText(img, x0-textWidth(label, scale)-8, y-7, label, scale, black)
			}
		}
		rect(img, x0, y0, x0+pw, y0+ph, black)
		drawText(img, x0+pw/2-textWidth(fmt.Sprintf("%d in flight", n), scale)/2, y0-24, fmt.Sprintf("%d in flight", n), scale, black)
		drawText(img, x0+pw/2-textWidth("latency, ms (log)", scale)/2, y0+ph+34, "latency, ms (log)", scale, dim)
		for _, o := range allOps {
			p := r.phase(o, n)
			if p == nil || len(p.lat) == 0 {
				continue
			}
			s := summarize(p.lat).sorted
			px, py := xOf(s[0]), yOf(0)
			for i, d := range s {
				x, y := xOf(d), yOf(float64(i+1)/float64(len(s)))
				line(img, px, py, x, py, opColors[o], 2)
				line(img, x, py, x, y, opColors[o], 2)
				px, py = x, y
			}
		}
	}
	// legend
	lx, ly := left, top+ph+80
	for _, o := range allOps {
		label := string(o)
		if o == opCopy {
			label = "baseline (copy)"
		}
		fill(img, image.Rect(lx, ly+4, lx+30, ly+9), opColors[o])
		drawText(img, lx+38, ly, label, scale, black)
		lx += 38 + textWidth(label, scale) + 40
	}
	return save(path, img)
}

func save(path string, img image.Image) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := png.Encode(f, img); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func fill(img *image.RGBA, r image.Rectangle, c color.Color) {
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			img.Set(x, y, c)
		}
	}
}

func rect(img *image.RGBA, x0, y0, x1, y1 int, c color.Color) {
	line(img, x0, y0, x1, y0, c, 1)
	line(img, x0, y1, x1, y1, c, 1)
	line(img, x0, y0, x0, y1, c, 1)
	line(img, x1, y0, x1, y1, c, 1)
}

// line draws a straight line (Bresenham) with a square pen of width w.
func line(img *image.RGBA, x0, y0, x1, y1 int, c color.Color, w int) {
	dx, dy := abs(x1-x0), -abs(y1-y0)
	sx, sy := sign(x1-x0), sign(y1-y0)
	e := dx + dy
	for {
		for a := 0; a < w; a++ {
			for b := 0; b < w; b++ {
				img.Set(x0+a, y0+b, c)
			}
		}
		if x0 == x1 && y0 == y1 {
			return
		}
		e2 := 2 * e
		if e2 >= dy {
			e += dy
			x0 += sx
		}
		if e2 <= dx {
			e += dx
			y0 += sy
		}
	}
}

func abs(v int) int {
	if v < 0 {
		return -v
	}
	return v
}

func sign(v int) int {
	switch {
	case v < 0:
		return -1
	case v > 0:
		return 1
	}
	return 0
}
