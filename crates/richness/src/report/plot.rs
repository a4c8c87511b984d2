//! Figures: a plain description of a plot, rendered to SVG or PNG with `plotters`.
//!
//! A [`Figure`] is data (series of points, optional bands, axis scales and labels),
//! so every figure can also be written as CSV ([`Figure::to_csv`]) and read back by
//! pandas. Text is drawn with the DejaVu Sans font compiled into the library, so
//! PNGs render identically without any system font library.
//!
//! ```
//! use richness::report::plot::{Figure, Series, Style};
//! let mut fig = Figure::new("‖Δh‖ against width", "width n", "‖Δh‖");
//! fig.x_log = true;
//! fig.y_log = true;
//! fig.series.push(Series::new("layer 2", vec![256.0, 1024.0], vec![0.5, 1.0]).style(Style::LinePoints));
//! let svg = fig.to_svg().unwrap();
//! assert!(svg.starts_with("<svg"));
//! assert!(fig.to_csv().contains("layer 2,256,0.5"));
//! ```

use crate::error::{Error, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::Path;
use std::sync::Once;

/// DejaVu Sans (Bitstream Vera licence, see `assets/DejaVuSans-LICENSE.txt`).
static FONT: &[u8] = include_bytes!("../../assets/DejaVuSans.ttf");
static FONT_INIT: Once = std::sync::Once::new();

fn ensure_font() {
    FONT_INIT.call_once(|| {
        // The embedded font is valid; a failure here would be a build defect.
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    });
}

/// How a series is drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Style {
    Line,
    Dashed,
    Points,
    LinePoints,
    /// Large hollow markers (e.g. an optimum).
    Markers,
}

/// One labelled set of points, with an optional band (e.g. min–max over seeds).
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    pub label: String,
    pub x: Vec<f64>,
    pub y: Vec<f64>,
    /// Lower and upper edge of a shaded band at each x.
    pub band: Option<(Vec<f64>, Vec<f64>)>,
    pub style: Style,
    /// Palette index (defaults to the series' position).
    pub color: Option<usize>,
}

impl Series {
    pub fn new(label: impl Into<String>, x: Vec<f64>, y: Vec<f64>) -> Self {
        Series {
            label: label.into(),
            x,
            y,
            band: None,
            style: Style::LinePoints,
            color: None,
        }
    }
    pub fn style(mut self, s: Style) -> Self {
        self.style = s;
        self
    }
    pub fn color(mut self, c: usize) -> Self {
        self.color = Some(c);
        self
    }
    pub fn band(mut self, lo: Vec<f64>, hi: Vec<f64>) -> Self {
        self.band = Some((lo, hi));
        self
    }
}

/// A whole plot.
#[derive(Clone, Debug, PartialEq)]
pub struct Figure {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub x_log: bool,
    pub y_log: bool,
    pub series: Vec<Series>,
    /// Pixel size (width, height).
    pub size: (u32, u32),
}

/// Tableau-10: distinguishable, print- and colour-blind-friendly enough.
const PALETTE: [(u8, u8, u8); 10] = [
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
    (188, 189, 34),
    (23, 190, 207),
];

fn color(i: usize) -> RGBColor {
    let (r, g, b) = PALETTE[i % PALETTE.len()];
    RGBColor(r, g, b)
}

fn plot_err<E: std::fmt::Debug>(e: E) -> Error {
    Error::config(format!("plot rendering failed: {e:?}"))
}

impl Figure {
    pub fn new(
        title: impl Into<String>,
        x_label: impl Into<String>,
        y_label: impl Into<String>,
    ) -> Self {
        Figure {
            title: title.into(),
            x_label: x_label.into(),
            y_label: y_label.into(),
            x_log: false,
            y_log: false,
            series: Vec::new(),
            size: (720, 480),
        }
    }

    /// A log–log figure.
    pub fn loglog(
        title: impl Into<String>,
        x_label: impl Into<String>,
        y_label: impl Into<String>,
    ) -> Self {
        Figure {
            x_log: true,
            y_log: true,
            ..Figure::new(title, x_label, y_label)
        }
    }

    /// Tidy CSV: `series,x,y,lo,hi`.
    pub fn to_csv(&self) -> String {
        let mut s = String::from("series,x,y,lo,hi\n");
        for ser in &self.series {
            for (i, (x, y)) in ser.x.iter().zip(&ser.y).enumerate() {
                let (lo, hi) = match &ser.band {
                    Some((l, h)) => (fmt(l[i]), fmt(h[i])),
                    None => (String::new(), String::new()),
                };
                s.push_str(&format!(
                    "{},{},{},{lo},{hi}\n",
                    csv_field(&ser.label),
                    fmt(*x),
                    fmt(*y)
                ));
            }
        }
        s
    }

    /// The data range of one axis over every plotted value (positive values only on a log axis).
    fn range(&self, x_axis: bool) -> (f64, f64) {
        let log = if x_axis { self.x_log } else { self.y_log };
        let mut vals: Vec<f64> = Vec::new();
        for s in &self.series {
            if x_axis {
                vals.extend(&s.x);
            } else {
                vals.extend(&s.y);
                if let Some((lo, hi)) = &s.band {
                    vals.extend(lo);
                    vals.extend(hi);
                }
            }
        }
        let ok: Vec<f64> = vals
            .into_iter()
            .filter(|v| v.is_finite() && (!log || *v > 0.0))
            .collect();
        if ok.is_empty() {
            return if log { (0.1, 10.0) } else { (0.0, 1.0) };
        }
        let (mut lo, mut hi) = ok
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| {
                (a.min(v), b.max(v))
            });
        if log {
            if hi <= lo * 1.0001 {
                lo /= 2.0;
                hi *= 2.0;
            }
            let pad = (hi / lo).powf(0.05);
            (lo / pad, hi * pad)
        } else {
            if hi - lo <= 1e-12 * hi.abs().max(1.0) {
                lo -= 0.5 * lo.abs().max(1.0);
                hi += 0.5 * hi.abs().max(1.0);
            }
            let pad = 0.05 * (hi - lo);
            (lo - pad, hi + pad)
        }
    }

    /// Draw into any plotters drawing area.
    pub fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> Result<()> {
        ensure_font();
        area.fill(&WHITE).map_err(plot_err)?;
        let (x0, x1) = self.range(true);
        let (y0, y1) = self.range(false);
        let mut b = ChartBuilder::on(area);
        b.caption(&self.title, ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(42)
            .y_label_area_size(70);
        // The four axis-scale combinations have different coordinate types.
        macro_rules! with_chart {
            ($xr:expr, $yr:expr) => {{
                let mut chart = b.build_cartesian_2d($xr, $yr).map_err(plot_err)?;
                chart
                    .configure_mesh()
                    .x_desc(&self.x_label)
                    .y_desc(&self.y_label)
                    .label_style(("sans-serif", 13))
                    .axis_desc_style(("sans-serif", 15))
                    .x_labels(10)
                    .y_labels(10)
                    .x_label_formatter(&|v| tick(*v))
                    .y_label_formatter(&|v| tick(*v))
                    .light_line_style(WHITE.mix(0.0))
                    .bold_line_style(BLACK.mix(0.08))
                    .draw()
                    .map_err(plot_err)?;
                self.draw_series(&mut chart)?;
                chart
                    .configure_series_labels()
                    .background_style(WHITE.mix(0.85))
                    .border_style(BLACK.mix(0.3))
                    .label_font(("sans-serif", 13))
                    .position(SeriesLabelPosition::UpperRight)
                    .draw()
                    .map_err(plot_err)?;
            }};
        }
        // plotters' own log key points skip decades below 1; give 1-2-5 ticks ourselves.
        let (xk, yk) = (log_ticks(x0, x1), log_ticks(y0, y1));
        match (self.x_log, self.y_log) {
            (true, true) => with_chart!(
                (x0..x1).log_scale().with_key_points(xk),
                (y0..y1).log_scale().with_key_points(yk)
            ),
            (true, false) => with_chart!((x0..x1).log_scale().with_key_points(xk), y0..y1),
            (false, true) => with_chart!(x0..x1, (y0..y1).log_scale().with_key_points(yk)),
            (false, false) => with_chart!(x0..x1, y0..y1),
        }
        Ok(())
    }

    fn draw_series<'a, DB: DrawingBackend + 'a, CT>(
        &self,
        chart: &mut ChartContext<'a, DB, CT>,
    ) -> Result<()>
    where
        CT: CoordTranslate<From = (f64, f64)>,
    {
        let ok = |x: f64, y: f64| {
            x.is_finite() && y.is_finite() && (!self.x_log || x > 0.0) && (!self.y_log || y > 0.0)
        };
        for (i, s) in self.series.iter().enumerate() {
            let c = color(s.color.unwrap_or(i));
            if let Some((lo, hi)) = &s.band {
                let mut poly: Vec<(f64, f64)> =
                    s.x.iter()
                        .zip(hi)
                        .filter(|(x, y)| ok(**x, **y))
                        .map(|(x, y)| (*x, *y))
                        .collect();
                poly.extend(
                    s.x.iter()
                        .zip(lo)
                        .rev()
                        .filter(|(x, y)| ok(**x, **y))
                        .map(|(x, y)| (*x, *y)),
                );
                if poly.len() >= 3 {
                    chart
                        .draw_series(std::iter::once(Polygon::new(poly, c.mix(0.18).filled())))
                        .map_err(plot_err)?;
                }
            }
            let pts: Vec<(f64, f64)> =
                s.x.iter()
                    .zip(&s.y)
                    .filter(|(x, y)| ok(**x, **y))
                    .map(|(x, y)| (*x, *y))
                    .collect();
            let label = s.label.clone();
            let legend = move |c: RGBColor, dashed: bool| {
                move |(x, y): (i32, i32)| {
                    if dashed {
                        PathElement::new(vec![(x, y), (x + 8, y)], c.stroke_width(2))
                    } else {
                        PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(2))
                    }
                }
            };
            let anno = match s.style {
                Style::Line | Style::LinePoints => chart
                    .draw_series(LineSeries::new(pts.clone(), c.stroke_width(2)))
                    .map_err(plot_err)?,
                Style::Dashed => chart
                    .draw_series(DashedLineSeries::new(pts.clone(), 8, 5, c.stroke_width(2)))
                    .map_err(plot_err)?,
                Style::Points => chart
                    .draw_series(pts.iter().map(|&p| Circle::new(p, 3, c.filled())))
                    .map_err(plot_err)?,
                Style::Markers => chart
                    .draw_series(pts.iter().map(|&p| Circle::new(p, 7, c.stroke_width(2))))
                    .map_err(plot_err)?,
            };
            if !label.is_empty() {
                anno.label(label)
                    .legend(legend(c, s.style == Style::Dashed));
            }
            if s.style == Style::LinePoints {
                chart
                    .draw_series(pts.iter().map(|&p| Circle::new(p, 3, c.filled())))
                    .map_err(plot_err)?;
            }
        }
        Ok(())
    }

    /// The figure as an SVG document.
    pub fn to_svg(&self) -> Result<String> {
        let mut s = String::new();
        {
            let root = SVGBackend::with_string(&mut s, self.size).into_drawing_area();
            self.draw(&root)?;
            root.present().map_err(plot_err)?;
        }
        Ok(s)
    }

    /// Write an SVG file.
    pub fn save_svg(&self, path: impl AsRef<Path>) -> Result<()> {
        crate::files::write_atomic(path.as_ref(), self.to_svg()?.as_bytes())
    }

    /// Write a PNG file.
    pub fn save_png(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let root = BitMapBackend::new(path, self.size).into_drawing_area();
        self.draw(&root)?;
        root.present()
            .map_err(|e| Error::file(path, format!("cannot write PNG: {e:?}")))
    }

    /// Write `stem.png`, `stem.svg` and `stem.csv` (the plotted data).
    pub fn save_all(&self, dir: &Path, stem: &str) -> Result<()> {
        self.save_png(dir.join(format!("{stem}.png")))?;
        self.save_svg(dir.join(format!("{stem}.svg")))?;
        crate::files::write_atomic(&dir.join(format!("{stem}.csv")), self.to_csv().as_bytes())
    }
}

/// Several figures side by side in one image (`cols` per row).
pub struct Grid<'a> {
    pub figures: &'a [Figure],
    pub cols: usize,
}

impl Grid<'_> {
    fn size(&self) -> (u32, u32) {
        let cols = self.cols.max(1);
        let rows = self.figures.len().div_ceil(cols).max(1);
        let (w, h) = self.figures.first().map(|f| f.size).unwrap_or((480, 360));
        (w * cols as u32, h * rows as u32)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()> {
        let cols = self.cols.max(1);
        let rows = self.figures.len().div_ceil(cols).max(1);
        root.fill(&WHITE).map_err(plot_err)?;
        for (fig, area) in self.figures.iter().zip(root.split_evenly((rows, cols))) {
            fig.draw(&area)?;
        }
        Ok(())
    }

    pub fn to_svg(&self) -> Result<String> {
        let mut s = String::new();
        {
            let root = SVGBackend::with_string(&mut s, self.size()).into_drawing_area();
            self.draw(&root)?;
            root.present().map_err(plot_err)?;
        }
        Ok(s)
    }

    pub fn save_png(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let root = BitMapBackend::new(path, self.size()).into_drawing_area();
        self.draw(&root)?;
        root.present()
            .map_err(|e| Error::file(path, format!("cannot write PNG: {e:?}")))
    }

    /// Write `stem.png`, `stem.svg` and `stem.csv` (all panels' data, with a `panel` column).
    pub fn save_all(&self, dir: &Path, stem: &str) -> Result<()> {
        self.save_png(dir.join(format!("{stem}.png")))?;
        crate::files::write_atomic(&dir.join(format!("{stem}.svg")), self.to_svg()?.as_bytes())?;
        let mut csv = String::from("panel,series,x,y,lo,hi\n");
        for f in self.figures {
            for line in f.to_csv().lines().skip(1) {
                csv.push_str(&format!("{},{line}\n", csv_field(&f.title)));
            }
        }
        crate::files::write_atomic(&dir.join(format!("{stem}.csv")), csv.as_bytes())
    }
}

fn fmt(v: f64) -> String {
    if v.is_finite() {
        format!("{v}")
    } else {
        String::new()
    }
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// Tick positions 1, 2, 5 × 10^k inside [lo, hi] (only 1 × 10^k when that already
/// gives three or more).
fn log_ticks(lo: f64, hi: f64) -> Vec<f64> {
    if !(lo > 0.0 && hi > lo && lo.is_finite() && hi.is_finite()) {
        return Vec::new();
    }
    let (k0, k1) = (lo.log10().floor() as i32, hi.log10().ceil() as i32);
    let pick = |mults: &[f64]| -> Vec<f64> {
        (k0..=k1)
            .flat_map(|k| mults.iter().map(move |m| m * 10f64.powi(k)))
            .filter(|v| *v >= lo * (1.0 - 1e-9) && *v <= hi * (1.0 + 1e-9))
            .collect()
    };
    let decades = pick(&[1.0]);
    if decades.len() >= 3 {
        decades
    } else {
        pick(&[1.0, 2.0, 5.0])
    }
}

/// Compact tick labels: 256, 0.01, 1e-4, 3.2e5.
fn tick(v: f64) -> String {
    let a = v.abs();
    // Linear axes put a tick at "0" computed as ±2e-16.
    if a < 1e-13 {
        "0".into()
    } else if (1e-2..1e5).contains(&a) {
        let s = format!("{:.3}", v);
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        let s = format!("{:.1e}", v);
        s.replace(".0e", "e")
    }
}

/// A straight line y = c·x^slope through (x_mid, y_mid), over [x_lo, x_hi] (for
/// theory guides on log–log axes).
pub fn power_line(label: &str, x_lo: f64, x_hi: f64, x_mid: f64, y_mid: f64, slope: f64) -> Series {
    let xs = vec![x_lo, x_hi];
    let ys = xs.iter().map(|x| y_mid * (x / x_mid).powf(slope)).collect();
    Series::new(label, xs, ys).style(Style::Dashed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_png_and_svg_with_text() {
        let dir = std::env::temp_dir().join(format!("richness-plot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut f = Figure::loglog("test ‖Δh‖", "width n", "value");
        f.series.push(
            Series::new("a", vec![1.0, 10.0, 100.0], vec![1.0, 3.0, 10.0])
                .band(vec![0.8, 2.0, 8.0], vec![1.2, 4.0, 12.0]),
        );
        f.series
            .push(power_line("n^0.5", 1.0, 100.0, 10.0, 3.0, 0.5));
        f.save_all(&dir, "t").unwrap();
        let png = std::fs::read(dir.join("t.png")).unwrap();
        assert_eq!(&png[1..4], b"PNG");
        let svg = std::fs::read_to_string(dir.join("t.svg")).unwrap();
        assert!(svg.contains("width n") && svg.contains("<polygon") || svg.contains("<path"));
        // Linear axes and a grid.
        let mut g = Figure::new("lin", "x", "y");
        g.series
            .push(Series::new("s", vec![0.0, 1.0], vec![-1.0, 1.0]).style(Style::Points));
        Grid {
            figures: &[g.clone(), g],
            cols: 2,
        }
        .save_all(&dir, "grid")
        .unwrap();
        assert!(dir.join("grid.png").exists());
    }
}
