//! Small line-plot helper shared by the example tools.
//!
//! The `profile` example draws the power-law report (neuron activation
//! frequency against rank, usually on log–log axes) and the `sweep` example
//! draws the sparsity sweep (speed or error against the sparsity threshold).
//! Both only need a few labelled lines in one row of panels written to a PNG,
//! so this module wraps [`plotters`] behind a three-item API: [`Series`],
//! [`Panel`] and [`line_plot`].
//!
//! `plotters` is used with its pure-Rust bitmap backend and the `ab_glyph`
//! text renderer, and the DejaVu Sans font is bundled next to this file
//! (`DejaVuSans.ttf`, licence in `DejaVu-LICENSE.txt`) and compiled into the
//! binary. No system libraries (fontconfig, freetype) and no installed fonts
//! are needed, so the plots render the same on any machine, headless
//! included.

use std::path::Path;
use std::sync::OnceLock;

use anyhow::{Result, bail, ensure};
use plotters::coord::Shift;
use plotters::coord::combinators::WithKeyPoints;
use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::prelude::*;

/// Font family name the bundled font is registered under (also the family
/// `plotters` falls back to for `FontFamily::SansSerif`).
const FONT_FAMILY: &str = "sans-serif";

/// The bundled DejaVu Sans font (see `DejaVu-LICENSE.txt`).
static FONT_BYTES: &[u8] = include_bytes!("DejaVuSans.ttf");

/// Line colours (the "Tableau 10" set: distinct and readable on white).
/// Series beyond the tenth continue with `Palette99`.
const COLORS: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// Series with at most this many drawable points also get a marker per point
/// (so a single-point series stays visible).
const MAX_MARKED_POINTS: usize = 64;

/// Smallest span of a log axis, in decades. Any range this wide holds at
/// least two of the ticks 1, 2, …, 9 (times a power of ten), whose
/// neighbours are at most a factor of 2 apart.
const MIN_LOG_DECADES: f64 = 0.6;

/// Smallest panel size in pixels that leaves room for the labels.
const MIN_PANEL_PX: (u32, u32) = (160, 120);

/// One line of a plot.
pub struct Series {
    /// Legend text; an empty label leaves the series out of the legend.
    pub label: String,
    /// `(x, y)` points, drawn in the given order. Non-finite values, and
    /// non-positive values on a log axis, are skipped.
    pub points: Vec<(f64, f64)>,
}

/// One panel (subplot).
pub struct Panel {
    /// Title drawn above the panel (may be empty).
    pub title: String,
    /// Label of the x axis (may be empty).
    pub x_label: String,
    /// Label of the y axis (may be empty).
    pub y_label: String,
    /// Use a logarithmic x axis.
    pub log_x: bool,
    /// Use a logarithmic y axis.
    pub log_y: bool,
    /// The lines of this panel; each gets its own colour.
    pub series: Vec<Series>,
}

/// Draws `panels` side by side (one row) into a PNG of `width`×`height` pixels at `path`.
///
/// Axis ranges come from the drawable points with a small margin. Fails
/// (without writing the file) when there is no panel, the image is too small,
/// `path` does not end in `.png`, or a panel has no drawable point; fails
/// after drawing when the file cannot be written.
pub fn line_plot(path: &Path, panels: &[Panel], width: u32, height: u32) -> Result<()> {
    ensure!(!panels.is_empty(), "line_plot: no panel to draw");
    let is_png = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("png"));
    ensure!(is_png, "line_plot: {} does not end in .png", path.display());
    let n = u32::try_from(panels.len()).unwrap_or(u32::MAX);
    ensure!(
        width / n >= MIN_PANEL_PX.0 && height >= MIN_PANEL_PX.1,
        "line_plot: {width}x{height} px is too small for {n} panel(s) \
         (each needs at least {}x{} px)",
        MIN_PANEL_PX.0,
        MIN_PANEL_PX.1
    );

    // Validate everything before touching the file.
    let prepared = panels
        .iter()
        .enumerate()
        .map(|(i, p)| Prepared::new(p).map_err(|e| e.context(format!("line_plot: panel {i}"))))
        .collect::<Result<Vec<_>>>()?;

    register_font()?;
    let root = BitMapBackend::new(path, (width, height)).into_drawing_area();
    root.fill(&WHITE)?;
    let areas = root.split_evenly((1, panels.len()));
    for (area, prep) in areas.iter().zip(&prepared) {
        let (x0, x1) = prep.x;
        let (y0, y1) = prep.y;
        match (prep.panel.log_x, prep.panel.log_y) {
            (false, false) => draw_panel(area, prep, x0..x1, y0..y1)?,
            (true, false) => draw_panel(area, prep, log_axis(x0, x1), y0..y1)?,
            (false, true) => draw_panel(area, prep, x0..x1, log_axis(y0, y1))?,
            (true, true) => draw_panel(area, prep, log_axis(x0, x1), log_axis(y0, y1))?,
        }
    }
    root.present()?;
    Ok(())
}

/// Registers the bundled font with `plotters`, once per process.
fn register_font() -> Result<()> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| {
        plotters::style::register_font(FONT_FAMILY, FontStyle::Normal, FONT_BYTES).is_ok()
    });
    ensure!(
        ok,
        "line_plot: the bundled DejaVuSans.ttf could not be parsed"
    );
    Ok(())
}

/// A panel with its drawable points filtered out and its axis ranges fixed.
struct Prepared<'a> {
    /// The panel as given.
    panel: &'a Panel,
    /// Drawable points of each series, same order as `panel.series`.
    points: Vec<Vec<(f64, f64)>>,
    /// x axis range, margin included.
    x: (f64, f64),
    /// y axis range, margin included.
    y: (f64, f64),
}

impl<'a> Prepared<'a> {
    /// Filters the drawable points and computes the axis ranges.
    fn new(panel: &'a Panel) -> Result<Self> {
        let points: Vec<Vec<(f64, f64)>> = panel
            .series
            .iter()
            .map(|s| {
                s.points
                    .iter()
                    .copied()
                    .filter(|&(x, y)| drawable(x, panel.log_x) && drawable(y, panel.log_y))
                    .collect()
            })
            .collect();
        let all = || points.iter().flatten();
        let x = axis_range(all().map(|p| p.0), panel.log_x);
        let y = axis_range(all().map(|p| p.1), panel.log_y);
        let (Some(x), Some(y)) = (x, y) else {
            let log = match (panel.log_x, panel.log_y) {
                (false, false) => "",
                _ => " (non-positive values are skipped on a log axis)",
            };
            bail!("{:?} has no drawable point{log}", panel.title);
        };
        Ok(Self {
            panel,
            points,
            x,
            y,
        })
    }

    /// Corner for the legend: the one holding the fewest data points.
    fn legend_position(&self) -> SeriesLabelPosition {
        let frac = |v: f64, (lo, hi): (f64, f64), log: bool| {
            let (v, lo, hi) = if log {
                (v.log10(), lo.log10(), hi.log10())
            } else {
                (v, lo, hi)
            };
            (v - lo) / (hi - lo)
        };
        // Counts for upper right, upper left, lower right, lower left.
        let mut count = [0usize; 4];
        for &(x, y) in self.points.iter().flatten() {
            let right = frac(x, self.x, self.panel.log_x) >= 0.5;
            let upper = frac(y, self.y, self.panel.log_y) >= 0.5;
            count[usize::from(!upper) * 2 + usize::from(!right)] += 1;
        }
        let corners = [
            SeriesLabelPosition::UpperRight,
            SeriesLabelPosition::UpperLeft,
            SeriesLabelPosition::LowerRight,
            SeriesLabelPosition::LowerLeft,
        ];
        // `min_by_key` keeps the first minimum, so ties prefer upper right.
        let best = (0..4).min_by_key(|&i| count[i]).unwrap_or(0);
        corners[best].clone()
    }
}

/// Whether `v` can be placed on an axis (finite, and positive on a log axis).
fn drawable(v: f64, log: bool) -> bool {
    v.is_finite() && (!log || v > 0.0)
}

/// Axis range covering `values` plus a margin of 5% of the span on each side
/// (in log space for a log axis). A zero span (one point, or equal values) is
/// widened so the range is never empty, and a log range to at least
/// [`MIN_LOG_DECADES`] so that it holds two ticks. `None` when there is no
/// value.
fn axis_range(values: impl Iterator<Item = f64>, log: bool) -> Option<(f64, f64)> {
    let (lo, hi) = values.fold(None, |acc: Option<(f64, f64)>, v| match acc {
        None => Some((v, v)),
        Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
    })?;
    let (lo, hi) = if log {
        let (a, b) = (lo.log10(), hi.log10());
        let m = ((b - a) * 0.05).max((MIN_LOG_DECADES - (b - a)) / 2.0);
        (10f64.powf(a - m), 10f64.powf(b + m))
    } else {
        let span = hi - lo;
        let scale = lo.abs().max(hi.abs());
        let m = if span > scale * 1e-9 {
            span * 0.05
        } else if scale > 0.0 {
            scale * 0.1
        } else {
            1.0
        };
        (lo - m, hi + m)
    };
    // Guard against overflow near f64::MAX (or underflow to 0 on a log axis).
    let ok = lo.is_finite() && hi.is_finite() && lo < hi && (!log || lo > 0.0);
    if ok {
        Some((lo, hi))
    } else if log {
        Some((f64::MIN_POSITIVE, f64::MAX))
    } else {
        Some((f64::MIN / 2.0, f64::MAX / 2.0))
    }
}

/// Log axis over `lo..hi` (both positive) with readable ticks.
///
/// `plotters` labels only powers of ten on a log axis, so a range within one
/// decade would get at most one label. The labelled ticks are instead the
/// sparsest of: powers of ten (every k-th one when there are many), 1-2-5
/// steps, or 1…9 steps, that gives at least three ticks; the other integer
/// multiples of powers of ten become the light grid lines.
fn log_axis(lo: f64, hi: f64) -> WithKeyPoints<LogCoord<f64>> {
    /// At most this many labelled ticks when labelling powers of ten.
    const MAX_DECADE_TICKS: i32 = 10;
    let (a, b) = (lo.log10().ceil() as i32, hi.log10().floor() as i32);
    // Multiples `m * 10^e` of powers of ten within `lo..=hi`, ascending.
    let multiples = |mantissas: &[u8]| -> Vec<f64> {
        (a - 1..=b)
            .flat_map(|e| mantissas.iter().map(move |&m| f64::from(m) * 10f64.powi(e)))
            .filter(|v| (lo..=hi).contains(v))
            .collect()
    };
    let all = multiples(&[1, 2, 3, 4, 5, 6, 7, 8, 9]);
    let decades = b - a + 1;
    let bold = if decades >= 3 {
        let step = (decades + MAX_DECADE_TICKS - 1) / MAX_DECADE_TICKS;
        (a..=b)
            .step_by(usize::try_from(step).unwrap_or(1))
            .map(|e| 10f64.powi(e))
            .collect()
    } else {
        let one_two_five = multiples(&[1, 2, 5]);
        if one_two_five.len() >= 3 {
            one_two_five
        } else {
            all.clone()
        }
    };
    // Light lines per 1…9 step only while that stays sparse enough to read.
    let light = if decades <= MAX_DECADE_TICKS {
        all
    } else {
        (a..=b).map(|e| 10f64.powi(e)).collect()
    };
    let light = light
        .into_iter()
        .filter(|v| !bold.contains(v))
        .collect::<Vec<_>>();
    (lo..hi)
        .log_scale()
        .with_key_points(bold)
        .with_light_points(light)
}

/// Colour of the `i`-th series of a panel.
fn series_color(i: usize) -> RGBAColor {
    COLORS
        .get(i)
        .map_or_else(|| Palette99::pick(i).to_rgba(), |c| c.to_rgba())
}

/// Compact tick label: up to 4 significant digits, scientific notation for
/// very large or very small magnitudes, no trailing zeros.
fn tick_label(v: f64) -> String {
    let a = v.abs();
    if a == 0.0 {
        return "0".to_string();
    }
    if !(1e-3..1e5).contains(&a) {
        let s = format!("{v:.2e}");
        return match s.split_once('e') {
            Some((mantissa, exp)) => format!("{}e{exp}", trim_zeros(mantissa)),
            None => s,
        };
    }
    // `a` is in [1e-3, 1e5), so the cast is in [-3, 4].
    let decimals = (3 - a.log10().floor() as i32).clamp(0, 6);
    trim_zeros(&format!("{v:.*}", decimals as usize)).to_string()
}

/// Strips trailing zeros (and a trailing dot) after a decimal point.
fn trim_zeros(s: &str) -> &str {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        s
    }
}

/// Draws one panel into `area` with the given axis specs (linear or log).
fn draw_panel<X, Y>(
    area: &DrawingArea<BitMapBackend<'_>, Shift>,
    prep: &Prepared<'_>,
    x_spec: X,
    y_spec: Y,
) -> Result<()>
where
    X: AsRangedCoord<Value = f64>,
    X::CoordDescType: ValueFormatter<f64>,
    Y: AsRangedCoord<Value = f64>,
    Y::CoordDescType: ValueFormatter<f64>,
{
    let panel = prep.panel;
    let mut builder = ChartBuilder::on(area);
    builder
        .margin(12)
        .x_label_area_size(46)
        .y_label_area_size(66);
    if !panel.title.is_empty() {
        builder.caption(&panel.title, (FONT_FAMILY, 20));
    }
    let mut chart = builder.build_cartesian_2d(x_spec, y_spec)?;

    let fmt = |v: &f64| tick_label(*v);
    let mut mesh = chart.configure_mesh();
    mesh.label_style((FONT_FAMILY, 13))
        .axis_desc_style((FONT_FAMILY, 15))
        .x_label_formatter(&fmt)
        .y_label_formatter(&fmt)
        .light_line_style(RGBColor(235, 235, 235));
    if !panel.x_label.is_empty() {
        mesh.x_desc(panel.x_label.as_str());
    }
    if !panel.y_label.is_empty() {
        mesh.y_desc(panel.y_label.as_str());
    }
    mesh.draw()?;

    let mut any_label = false;
    for (i, (series, points)) in panel.series.iter().zip(&prep.points).enumerate() {
        let color = series_color(i);
        let line = color.stroke_width(2);
        let drawn = chart.draw_series(LineSeries::new(points.iter().copied(), line))?;
        if !series.label.is_empty() {
            any_label = true;
            drawn
                .label(series.label.as_str())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], line));
        }
        if points.len() <= MAX_MARKED_POINTS {
            chart.draw_series(points.iter().map(|&p| Circle::new(p, 3, color.filled())))?;
        }
    }
    if any_label {
        chart
            .configure_series_labels()
            .position(prep.legend_position())
            .label_font((FONT_FAMILY, 13))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()?;
    }
    Ok(())
}
