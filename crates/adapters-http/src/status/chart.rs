//! Server-side SVG line charts for the operator status page. [`render`] turns a [`Chart`] (one
//! value per x position for each [`Series`], plus horizontal [`Threshold`] lines) into one
//! self-contained `<svg>` element that needs no JavaScript, fonts or other assets. The page's
//! Content-Security-Policy allows no inline styles, so everything is drawn with presentation
//! attributes (`fill`, `stroke`, `font-size`, ...) and never with `style`; axis text and lines use
//! `currentColor`, so they follow the page's text colour. The element has a `viewBox` and
//! `width="100%"`, so it scales to its container. Every text and attribute value is XML-escaped.

use std::fmt::{self, Write};

/// Width of the `viewBox`, in SVG user units; the height grows with the legend's rows.
const WIDTH: f64 = 720.0;
/// Font size of every label, in user units.
const FONT_SIZE: f64 = 12.0;
/// Estimated advance of one character: sans-serif text averages a little over half an em.
const CHAR_WIDTH: f64 = 0.62 * FONT_SIZE;
/// Blank space kept along the edges of the `viewBox`.
const PAD: f64 = 8.0;
/// Height of the plot area, between the highest gridline and the x axis.
const PLOT_HEIGHT: f64 = 220.0;
/// Room under the x axis for its ticks and labels.
const X_LABEL_BAND: f64 = 26.0;
/// Length of an x tick below the axis.
const TICK: f64 = 4.0;
/// Room between a y label and the plot.
const Y_LABEL_GAP: f64 = 6.0;
/// Least blank space between two x labels.
const X_LABEL_GAP: f64 = 10.0;
/// Height of one legend row.
const LEGEND_ROW: f64 = 18.0;
/// Length of a legend swatch.
const SWATCH: f64 = 16.0;
/// Room between a legend swatch and its label.
const SWATCH_GAP: f64 = 5.0;
/// Room between two legend entries on a row.
const LEGEND_GAP: f64 = 16.0;
/// The most intervals between y ticks (so 4 to 6 ticks in all, fewer only for tiny counts).
const MAX_INTERVALS: u32 = 5;
/// A data maximum below this gets the fallback scale (as if everything were 0).
const MIN_RANGE: f64 = 1e-9;
/// The scale never goes above this; larger values are drawn at the top edge.
const MAX_RANGE: f64 = 1e15;
/// Moves text down by about half its height, so `y` is its vertical centre.
const CENTRE_TEXT: &str = "0.32em";

/// How the y axis and the tooltips write a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum YFormat {
    /// Plain quantities (messages, events). Axis ticks are whole numbers, shortened from 10 000
    /// up (`25k`, `1.5M`); tooltips show the value with at most two decimals (`1234`, `0.5`).
    Count,
    /// Fractions shown as percentages: `0.05` is `5%`. Axis labels carry the decimals their tick
    /// step needs (`0.1%`, `0.25%`, `5%`); tooltips show three significant digits (`1.23%`).
    Percent,
}

/// One line on the chart.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Stable machine name: the `data-series` of its group and points, the `data-key` of its
    /// legend entry.
    pub key: String,
    /// Human name, shown in the legend and in each point's tooltip.
    pub label: String,
    /// Any SVG colour (`#1f77b4`, `crimson`), for the line, its points and its legend swatch.
    pub color: &'static str,
    /// One value per x position: index `i` belongs to `Chart::x_labels[i]`, in the unit the
    /// chart's [`YFormat`] implies (a count, or a fraction for `Percent`). `None` means no data
    /// there: no point, and the line breaks. NaN and infinities are treated as `None`; values
    /// below 0 are drawn on the x axis.
    pub values: Vec<Option<f64>>,
}

/// A limit drawn as a dashed horizontal line across the whole plot. The y axis always reaches
/// far enough to show it.
#[derive(Debug, Clone, PartialEq)]
pub struct Threshold {
    /// Stable machine name: the line's `data-threshold`, the legend entry's `data-key`.
    pub key: String,
    /// Human name, shown in the legend and the line's tooltip.
    pub label: String,
    /// Any SVG colour, for the line and its dashed legend swatch.
    pub color: &'static str,
    /// Where the line sits, in the same unit as the series values. A NaN or infinite
    /// threshold is not drawn.
    pub value: f64,
}

/// Everything [`render`] draws.
#[derive(Debug, Clone, PartialEq)]
pub struct Chart {
    /// The `<svg>` element's `id`, unique on the page; its `<title>` gets `{id}-title`.
    pub id: String,
    /// The chart's accessible name (the SVG's `<title>`); not drawn as visible text.
    pub title: String,
    /// Labels of the x positions, already formatted and short (`17:00`, `11-30`). Positions run
    /// from 0 to the longest of `x_labels` and the series' `values`; a position without a label
    /// has an empty one.
    pub x_labels: Vec<String>,
    /// A tick every this many positions, starting at position 0. Each tick is labelled unless
    /// labels that close would overlap: then only every second (third, ...) tick is. `0` lets
    /// the chart choose the spacing.
    pub x_tick_every: usize,
    /// How values are written on the y axis and in tooltips.
    pub y_format: YFormat,
    /// The lines, drawn in this order (later ones on top).
    pub series: Vec<Series>,
    /// The dashed limit lines, drawn under the series.
    pub thresholds: Vec<Threshold>,
}

/// Draws `chart` as one `<svg class="chart">` element (a string of SVG markup to put inline in
/// an HTML page), 720 user units wide, about 300 high, scaled to its container's width.
///
/// It holds: the `<title>`; a legend (`<g class="legend">` with one `<g class="legend-item"
/// data-key="…">` for each series, then each threshold, wrapping onto more rows when needed);
/// horizontal gridlines and y labels from 0 to a round maximum covering every value and every
/// threshold; the x axis with ticks and labels; each threshold as `<line class="threshold"
/// data-threshold="…" data-value="…">`; each series as `<g class="series" data-series="…">` with
/// a `<path>` through its values (broken at gaps) and one `<circle class="point">` per value,
/// carrying `data-index`, `data-x` (its x label), `data-value` (the value exactly as `f64`'s
/// `Display` writes it, `3` for 3.0) and a tooltip `<title>`.
#[must_use]
pub fn render(chart: &Chart) -> String {
    Svg(chart).to_string()
}

/// [`render`]'s output as [`fmt::Display`], so every part is written into one buffer. The only
/// errors it passes on are the buffer's, and a `String` never refuses a write.
struct Svg<'c>(&'c Chart);

impl fmt::Display for Svg<'_> {
    fn fmt(&self, out: &mut fmt::Formatter<'_>) -> fmt::Result {
        let chart = self.0;
        let positions = chart
            .series
            .iter()
            .map(|series| series.values.len())
            .fold(chart.x_labels.len(), usize::max);
        let scale = Scale::covering(data_max(chart), chart.y_format);
        let y_labels: Vec<String> = (0..=scale.intervals)
            .map(|tick| scale.label(tick))
            .collect();
        let left = PAD + max_text_width(y_labels.iter().map(String::as_str)) + Y_LABEL_GAP;
        let legend = Legend::lay_out(chart, left);
        let top = PAD + legend.height() + FONT_SIZE / 2.0;
        let widest_x_label = max_text_width(chart.x_labels.iter().map(String::as_str));
        let frame = Frame {
            left,
            right: WIDTH - PAD - (widest_x_label / 2.0).max(PAD),
            top,
            bottom: top + PLOT_HEIGHT,
            positions,
        };
        let height = frame.bottom + X_LABEL_BAND;

        let id = escape(&chart.id);
        write!(
            out,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart\" id=\"{id}\" role=\"img\" \
             aria-labelledby=\"{id}-title\" viewBox=\"0 0 {} {}\" width=\"100%\" \
             preserveAspectRatio=\"xMidYMid meet\" font-family=\"system-ui, sans-serif\" \
             font-size=\"{}\">\n<title id=\"{id}-title\">{}</title>\n",
            coord(WIDTH),
            coord(height),
            coord(FONT_SIZE),
            escape(&chart.title),
        )?;
        legend.render(out)?;
        render_y_axis(out, &frame, &scale, &y_labels)?;
        render_x_axis(out, &frame, &chart.x_labels, chart.x_tick_every)?;
        for threshold in chart.thresholds.iter().filter(|t| t.value.is_finite()) {
            render_threshold(out, &frame, &scale, chart.y_format, threshold)?;
        }
        for series in &chart.series {
            render_series(out, &frame, &scale, chart, series)?;
        }
        out.write_str("</svg>")
    }
}

/// The largest finite value of any series or threshold (0 when there is none).
fn data_max(chart: &Chart) -> f64 {
    let values = chart
        .series
        .iter()
        .flat_map(|series| series.values.iter().flatten().copied());
    let thresholds = chart.thresholds.iter().map(|threshold| threshold.value);
    values
        .chain(thresholds)
        .filter(|value| value.is_finite())
        .fold(0.0, f64::max)
}

/// Where the plot sits in the `viewBox`, and how positions and values map onto it.
struct Frame {
    left: f64,
    right: f64,
    top: f64,
    bottom: f64,
    positions: usize,
}

impl Frame {
    /// The horizontal distance between two neighbouring positions (0 with fewer than two).
    fn step(&self) -> f64 {
        if self.positions > 1 {
            (self.right - self.left) / to_f64(self.positions - 1)
        } else {
            0.0
        }
    }

    fn x(&self, position: usize) -> f64 {
        if self.positions > 1 {
            self.left + self.step() * to_f64(position)
        } else {
            f64::midpoint(self.left, self.right)
        }
    }

    /// The y coordinate of `value`, kept inside the plot.
    fn y(&self, scale: &Scale, value: f64) -> f64 {
        let share = (value / scale.top()).clamp(0.0, 1.0);
        self.bottom - (self.bottom - self.top) * share
    }
}

/// The y axis: 0 to `intervals` steps of `step`, where `step` is 1, 2, 2.5 or 5 times
/// `10^exponent`.
struct Scale {
    step: f64,
    exponent: i32,
    intervals: u32,
    format: YFormat,
    /// Labels are written in units of `10^label_exponent` (3 for `k`, -2 for `%`).
    label_exponent: i32,
    suffix: &'static str,
}

impl Scale {
    /// The smallest round scale whose top is at least `max`, in at most [`MAX_INTERVALS`]
    /// steps. Counts only take whole steps. With nothing to show (`max` 0) the axis runs to 1
    /// for counts and to 1% for percentages.
    fn covering(max: f64, format: YFormat) -> Self {
        let max = if max >= MIN_RANGE {
            max.min(MAX_RANGE)
        } else {
            match format {
                YFormat::Count => 1.0,
                YFormat::Percent => 0.01,
            }
        };
        let whole = format == YFormat::Count;
        // 10^magnitude <= max < 10^(magnitude + 1)
        let mut magnitude = 0;
        while scaled(1.0, magnitude) > max {
            magnitude -= 1;
        }
        while scaled(1.0, magnitude + 1) <= max {
            magnitude += 1;
        }
        let (step, exponent, intervals) = ((magnitude - 1)..=(magnitude + 1))
            // The mantissa in tenths: 1, 2, 2.5 and 5.
            .flat_map(|exponent| [10_u32, 20, 25, 50].map(|tenths| (tenths, exponent)))
            .filter(|&(tenths, exponent)| {
                !whole || exponent >= 1 || (exponent == 0 && tenths % 10 == 0)
            })
            .find_map(|(tenths, exponent)| {
                let step = scaled(f64::from(tenths), exponent - 1);
                (1..=MAX_INTERVALS)
                    .find(|&intervals| f64::from(intervals) * step >= max * (1.0 - 1e-9))
                    .map(|intervals| (step, exponent, intervals))
            })
            .unwrap_or((1.0, 0, 1));
        let (label_exponent, suffix) = match format {
            YFormat::Percent => (-2, "%"),
            YFormat::Count if f64::from(intervals) * step >= 1e7 => (6, "M"),
            YFormat::Count if f64::from(intervals) * step >= 1e4 => (3, "k"),
            YFormat::Count => (0, ""),
        };
        Self {
            step,
            exponent,
            intervals,
            format,
            label_exponent,
            suffix,
        }
    }

    fn top(&self) -> f64 {
        self.value(self.intervals)
    }

    fn value(&self, tick: u32) -> f64 {
        f64::from(tick) * self.step
    }

    /// The label of tick `tick` (0 is the x axis): just the decimals the step needs.
    fn label(&self, tick: u32) -> String {
        if tick == 0 && self.format == YFormat::Count {
            return "0".to_owned();
        }
        // One decimal more than the step's exponent asks for covers the 2.5 steps; trailing
        // zeros are trimmed.
        let decimals = usize::try_from(self.label_exponent - self.exponent).unwrap_or(0) + 1;
        let value = scaled(self.value(tick), -self.label_exponent);
        format!("{}{}", fixed(value, decimals), self.suffix)
    }

    /// A value as a tooltip writes it.
    fn tooltip(&self, value: f64) -> String {
        format_value(value, self.format)
    }
}

/// `value` as a tooltip writes it under `format`.
pub(crate) fn format_value(value: f64, format: YFormat) -> String {
    match format {
        YFormat::Count => fixed(value, 2),
        YFormat::Percent => {
            let percent = value * 100.0;
            // Three significant digits, at most six decimals.
            let mut decimals = 0;
            while decimals < 6 && scaled(percent, decimals).abs() < 100.0 {
                decimals += 1;
            }
            let decimals = usize::try_from(decimals).unwrap_or(0);
            format!("{}%", fixed(percent, decimals))
        }
    }
}

fn render_y_axis(
    out: &mut impl Write,
    frame: &Frame,
    scale: &Scale,
    labels: &[String],
) -> fmt::Result {
    write!(
        out,
        "<g class=\"grid\" stroke=\"currentColor\" stroke-opacity=\"0.15\" stroke-width=\"1\" \
         shape-rendering=\"crispEdges\"><line x1=\"{l}\" y1=\"{t}\" x2=\"{l}\" y2=\"{b}\"/>",
        l = coord(frame.left),
        t = coord(frame.top),
        b = coord(frame.bottom),
    )?;
    for tick in 1..=scale.intervals {
        let y = coord(frame.y(scale, scale.value(tick)));
        write!(
            out,
            "<line x1=\"{}\" y1=\"{y}\" x2=\"{}\" y2=\"{y}\"/>",
            coord(frame.left),
            coord(frame.right),
        )?;
    }
    out.write_str("</g>\n<g class=\"y-labels\" fill=\"currentColor\" text-anchor=\"end\">")?;
    for (tick, label) in (0..=scale.intervals).zip(labels) {
        write!(
            out,
            "<text x=\"{}\" y=\"{}\" dy=\"{CENTRE_TEXT}\">{}</text>",
            coord(frame.left - Y_LABEL_GAP),
            coord(frame.y(scale, scale.value(tick))),
            escape(label),
        )?;
    }
    out.write_str("</g>\n")
}

fn render_x_axis(
    out: &mut impl Write,
    frame: &Frame,
    labels: &[String],
    tick_every: usize,
) -> fmt::Result {
    let bottom = coord(frame.bottom);
    write!(
        out,
        "<g class=\"x-axis\" stroke=\"currentColor\" stroke-opacity=\"0.6\" stroke-width=\"1\" \
         shape-rendering=\"crispEdges\"><line x1=\"{}\" y1=\"{bottom}\" x2=\"{}\" y2=\"{bottom}\"/>",
        coord(frame.left),
        coord(frame.right),
    )?;
    let widest = max_text_width(labels.iter().map(String::as_str));
    let fits =
        |every: usize| frame.positions < 2 || to_f64(every) * frame.step() >= widest + X_LABEL_GAP;
    let tick_every = if tick_every == 0 {
        (1..frame.positions)
            .find(|&every| fits(every))
            .unwrap_or(frame.positions.max(1))
    } else {
        tick_every
    };
    let mut label_every = tick_every;
    while label_every < frame.positions && !fits(label_every) {
        label_every += tick_every;
    }
    let tick_end = coord(frame.bottom + TICK);
    for position in (0..frame.positions).step_by(tick_every) {
        let x = coord(frame.x(position));
        write!(
            out,
            "<line x1=\"{x}\" y1=\"{bottom}\" x2=\"{x}\" y2=\"{tick_end}\"/>"
        )?;
    }
    out.write_str("</g>\n<g class=\"x-labels\" fill=\"currentColor\" text-anchor=\"middle\">")?;
    let baseline = coord(frame.bottom + TICK + FONT_SIZE + 2.0);
    for position in (0..frame.positions).step_by(label_every) {
        let Some(label) = labels.get(position).filter(|label| !label.is_empty()) else {
            continue;
        };
        // Kept whole inside the viewBox, even if that moves it off its tick a little.
        let half = text_width(label) / 2.0;
        let x = frame.x(position).clamp(half, (WIDTH - half).max(half));
        write!(
            out,
            "<text x=\"{}\" y=\"{baseline}\">{}</text>",
            coord(x),
            escape(label),
        )?;
    }
    out.write_str("</g>\n")
}

fn render_threshold(
    out: &mut impl Write,
    frame: &Frame,
    scale: &Scale,
    format: YFormat,
    threshold: &Threshold,
) -> fmt::Result {
    let y = coord(frame.y(scale, threshold.value));
    writeln!(
        out,
        "<line class=\"threshold\" data-threshold=\"{}\" data-value=\"{}\" x1=\"{}\" y1=\"{y}\" \
         x2=\"{}\" y2=\"{y}\" stroke=\"{}\" stroke-width=\"1.5\" stroke-dasharray=\"6 4\">\
         <title>{}: {}</title></line>",
        escape(&threshold.key),
        threshold.value,
        coord(frame.left),
        coord(frame.right),
        escape(threshold.color),
        escape(&threshold.label),
        escape(&format_value(threshold.value, format)),
    )
}

fn render_series(
    out: &mut impl Write,
    frame: &Frame,
    scale: &Scale,
    chart: &Chart,
    series: &Series,
) -> fmt::Result {
    let key = escape(&series.key);
    let color = escape(series.color);
    write!(out, "<g class=\"series\" data-series=\"{key}\">")?;
    let points: Vec<(usize, f64)> = series
        .values
        .iter()
        .enumerate()
        .filter_map(|(index, value)| value.filter(|v| v.is_finite()).map(|v| (index, v)))
        .collect();

    // One subpath per run of neighbouring values; a lone value is only a point.
    let mut path = String::new();
    for run in points
        .chunk_by(|a, b| a.0 + 1 == b.0)
        .filter(|run| run.len() > 1)
    {
        for (n, &(index, value)) in run.iter().enumerate() {
            path.write_str(if n == 0 { "M" } else { "L" })?;
            write!(
                path,
                "{} {}",
                coord(frame.x(index)),
                coord(frame.y(scale, value))
            )?;
        }
    }
    if !path.is_empty() {
        write!(
            out,
            "<path class=\"line\" d=\"{path}\" fill=\"none\" stroke=\"{color}\" \
             stroke-width=\"2\" stroke-linejoin=\"round\" stroke-linecap=\"round\"/>"
        )?;
    }

    let label = escape(&series.label);
    for (index, value) in points {
        let x_label = chart.x_labels.get(index).map_or("", String::as_str);
        let at = if x_label.is_empty() {
            String::new()
        } else {
            format!(" {}", escape(x_label))
        };
        write!(
            out,
            "<circle class=\"point\" data-series=\"{key}\" data-index=\"{index}\" data-x=\"{}\" \
             data-value=\"{value}\" cx=\"{}\" cy=\"{}\" r=\"2.5\" fill=\"{color}\">\
             <title>{label}{at}: {}</title></circle>",
            escape(x_label),
            coord(frame.x(index)),
            coord(frame.y(scale, value)),
            escape(&scale.tooltip(value)),
        )?;
    }
    out.write_str("</g>\n")
}

/// One legend entry, placed.
struct LegendItem<'a> {
    key: &'a str,
    label: &'a str,
    color: &'static str,
    dashed: bool,
    x: f64,
    row: u32,
}

/// The legend above the plot: every series, then every threshold, in rows that fit the width.
struct Legend<'a> {
    items: Vec<LegendItem<'a>>,
    rows: u32,
}

impl<'a> Legend<'a> {
    fn lay_out(chart: &'a Chart, left: f64) -> Self {
        let series = chart
            .series
            .iter()
            .map(|s| (s.key.as_str(), s.label.as_str(), s.color, false));
        let thresholds = chart
            .thresholds
            .iter()
            .filter(|t| t.value.is_finite())
            .map(|t| (t.key.as_str(), t.label.as_str(), t.color, true));
        let mut items = Vec::new();
        let (mut x, mut row) = (left, 0);
        for (key, label, color, dashed) in series.chain(thresholds) {
            let width = SWATCH + SWATCH_GAP + text_width(label);
            if x > left && x + width > WIDTH - PAD {
                x = left;
                row += 1;
            }
            items.push(LegendItem {
                key,
                label,
                color,
                dashed,
                x,
                row,
            });
            x += width + LEGEND_GAP;
        }
        let rows = if items.is_empty() { 0 } else { row + 1 };
        Self { items, rows }
    }

    /// The height the rows take, with the gap below them.
    fn height(&self) -> f64 {
        if self.rows == 0 {
            0.0
        } else {
            f64::from(self.rows) * LEGEND_ROW + PAD
        }
    }

    fn render(&self, out: &mut impl Write) -> fmt::Result {
        out.write_str("<g class=\"legend\">")?;
        for item in &self.items {
            let y = coord(PAD + LEGEND_ROW * (f64::from(item.row) + 0.5));
            let (kind, swatch) = if item.dashed {
                ("threshold", "stroke-width=\"2\" stroke-dasharray=\"4 3\"")
            } else {
                ("series", "stroke-width=\"3\" stroke-linecap=\"round\"")
            };
            write!(
                out,
                "<g class=\"legend-item\" data-key=\"{}\" data-kind=\"{kind}\">\
                 <line x1=\"{}\" y1=\"{y}\" x2=\"{}\" y2=\"{y}\" stroke=\"{}\" {swatch}/>\
                 <text x=\"{}\" y=\"{y}\" dy=\"{CENTRE_TEXT}\" fill=\"currentColor\">{}</text></g>",
                escape(item.key),
                coord(item.x),
                coord(item.x + SWATCH),
                escape(item.color),
                coord(item.x + SWATCH + SWATCH_GAP),
                escape(item.label),
            )?;
        }
        out.write_str("</g>\n")
    }
}

/// An estimate of how wide `text` is drawn, in user units.
fn text_width(text: &str) -> f64 {
    to_f64(text.chars().count()) * CHAR_WIDTH
}

fn max_text_width<'t>(texts: impl Iterator<Item = &'t str>) -> f64 {
    texts.map(text_width).fold(0.0, f64::max)
}

#[allow(
    clippy::cast_precision_loss,
    reason = "positions and label lengths are far below 2^53"
)]
fn to_f64(n: usize) -> f64 {
    n as f64
}

/// `value` × 10^`exponent`. A negative exponent divides by the (exact) power of ten, so
/// `scaled(25.0, -4)` is the double nearest 0.0025, which multiplying by 0.0001 need not be.
fn scaled(value: f64, exponent: i32) -> f64 {
    if exponent >= 0 {
        value * 10f64.powi(exponent)
    } else {
        value / 10f64.powi(-exponent)
    }
}

/// `value` with at most `decimals` decimals, trailing zeros trimmed, never `-0`.
fn fixed(value: f64, decimals: usize) -> String {
    let mut text = format!("{value:.decimals$}");
    if text.contains('.') {
        let trimmed = text.trim_end_matches('0').trim_end_matches('.').len();
        text.truncate(trimmed);
    }
    if text == "-0" { "0".to_owned() } else { text }
}

/// A coordinate, rounded to one decimal (a tenth of a user unit is below a device pixel).
fn coord(value: f64) -> String {
    if value.is_finite() {
        fixed(value, 1)
    } else {
        "0".to_owned()
    }
}

/// `text` safe inside an XML element or a double- or single-quoted attribute. Characters XML
/// does not allow at all (most C0 controls) become U+FFFD.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\u{0}'..='\u{8}'
            | '\u{B}'
            | '\u{C}'
            | '\u{E}'..='\u{1F}'
            | '\u{FFFE}'
            | '\u{FFFF}' => {
                out.push('\u{FFFD}');
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn series(key: &str, values: &[Option<f64>]) -> Series {
        Series {
            key: key.to_owned(),
            label: format!("{key} label"),
            color: "#1f77b4",
            values: values.to_vec(),
        }
    }

    fn chart(format: YFormat, series: Vec<Series>, thresholds: Vec<Threshold>) -> Chart {
        let positions = series.iter().map(|s| s.values.len()).max().unwrap_or(0);
        Chart {
            id: "events".to_owned(),
            title: "Events per hour".to_owned(),
            x_labels: (0..positions)
                .map(|i| format!("{:02}:00", i % 24))
                .collect(),
            x_tick_every: 1,
            y_format: format,
            series,
            thresholds,
        }
    }

    fn threshold(key: &str, value: f64) -> Threshold {
        Threshold {
            key: key.to_owned(),
            label: format!("{key} limit"),
            color: "#d62728",
            value,
        }
    }

    /// Every start tag (without `<` and `>`) whose text begins with `prefix`, e.g. `circle `.
    fn tags<'s>(svg: &'s str, prefix: &str) -> Vec<&'s str> {
        svg.split('<')
            .filter(|piece| piece.starts_with(prefix))
            .map(|piece| piece.split('>').next().unwrap())
            .collect()
    }

    fn attr<'s>(tag: &'s str, name: &str) -> &'s str {
        let start = tag
            .find(&format!(" {name}=\""))
            .unwrap_or_else(|| panic!("no {name} in <{tag}>"))
            + name.len()
            + 3;
        let len = tag[start..].find('"').unwrap();
        &tag[start..start + len]
    }

    fn number(tag: &str, name: &str) -> f64 {
        attr(tag, name).parse().unwrap()
    }

    /// The markup of the first group whose start tag begins with `group`, up to the first
    /// `</g>` (the groups these tests look into hold no nested groups, or only the
    /// legend's items, which `section_until` reads).
    fn section<'s>(svg: &'s str, group: &str) -> &'s str {
        section_until(svg, group, "</g>")
    }

    fn section_until<'s>(svg: &'s str, group: &str, end: &str) -> &'s str {
        let start = svg.find(group).unwrap();
        let stop = start + svg[start..].find(end).unwrap();
        &svg[start..stop]
    }

    /// The texts of the `<text>` elements inside the group whose start tag begins with `group`.
    fn texts_in<'s>(svg: &'s str, group: &str) -> Vec<&'s str> {
        section(svg, group)
            .split("<text ")
            .skip(1)
            .map(|piece| {
                let piece = &piece[piece.find('>').unwrap() + 1..];
                &piece[..piece.find("</text>").unwrap()]
            })
            .collect()
    }

    /// Tags nest and close, attribute values are quoted, and every `&` starts an entity.
    fn assert_well_formed(svg: &str) {
        let mut open = Vec::new();
        let mut rest = svg;
        while let Some(start) = rest.find('<') {
            assert_entities(&rest[..start]);
            let end = start + rest[start..].find('>').expect("a tag is never closed");
            let tag = &rest[start + 1..end];
            assert_eq!(
                tag.matches('"').count() % 2,
                0,
                "unbalanced quotes in <{tag}>"
            );
            assert_entities(tag);
            if let Some(name) = tag.strip_prefix('/') {
                assert_eq!(open.pop(), Some(name), "</{name}> closes the wrong element");
            } else if !tag.ends_with('/') {
                open.push(tag.split_whitespace().next().unwrap());
            }
            rest = &rest[end + 1..];
        }
        assert!(
            rest.trim().is_empty(),
            "text after the root element: {rest}"
        );
        assert!(open.is_empty(), "never closed: {open:?}");
    }

    fn assert_entities(text: &str) {
        for (at, _) in text.match_indices('&') {
            let entity = &text[at..];
            assert!(
                ["&amp;", "&lt;", "&gt;", "&quot;", "&#39;"]
                    .iter()
                    .any(|known| entity.starts_with(known)),
                "bare & in {text}"
            );
        }
    }

    #[test]
    fn the_root_element_scales_to_its_container_and_is_labelled_by_its_title() {
        let svg = render(&chart(
            YFormat::Count,
            vec![series("sent", &[Some(1.0)])],
            vec![],
        ));

        let root = tags(&svg, "svg ")[0];
        assert_eq!(attr(root, "class"), "chart");
        assert_eq!(attr(root, "id"), "events");
        assert_eq!(attr(root, "role"), "img");
        assert_eq!(attr(root, "aria-labelledby"), "events-title");
        assert_eq!(attr(root, "width"), "100%");
        assert_eq!(attr(root, "preserveAspectRatio"), "xMidYMid meet");
        assert!(attr(root, "viewBox").starts_with("0 0 720 "));
        assert!(svg.contains("<title id=\"events-title\">Events per hour</title>"));
        assert!(svg.starts_with("<svg ") && svg.ends_with("</svg>"));
        assert_well_formed(&svg);
    }

    #[test]
    fn every_present_value_becomes_exactly_one_point_of_its_series() {
        let chart = chart(
            YFormat::Count,
            vec![
                series("sent", &[Some(3.0), None, Some(5.0), Some(0.0), None]),
                series("bounced", &[None, Some(1.0), None, None, None]),
            ],
            vec![],
        );

        let svg = render(&chart);

        let points = tags(&svg, "circle class=\"point\"");
        let of = |key: &str| {
            points
                .iter()
                .filter(|p| attr(p, "data-series") == key)
                .count()
        };
        assert_eq!(of("sent"), 3);
        assert_eq!(of("bounced"), 1);
        assert_eq!(points.len(), 4);
    }

    #[test]
    fn points_carry_their_position_label_and_the_exact_value() {
        let mut chart = chart(
            YFormat::Count,
            vec![series("sent", &[Some(3.0), None, Some(0.1), Some(1234.5)])],
            vec![],
        );
        chart.x_labels = vec![
            "17:00".into(),
            "18:00".into(),
            "19:00".into(),
            "20:00".into(),
        ];

        let svg = render(&chart);

        let points = tags(&svg, "circle class=\"point\"");
        let seen: Vec<(&str, &str, &str)> = points
            .iter()
            .map(|p| {
                (
                    attr(p, "data-index"),
                    attr(p, "data-x"),
                    attr(p, "data-value"),
                )
            })
            .collect();
        assert_eq!(
            seen,
            [
                ("0", "17:00", "3"),
                ("2", "19:00", "0.1"),
                ("3", "20:00", "1234.5")
            ]
        );
        assert!(svg.contains("<title>sent label 17:00: 3</title>"));
        assert!(svg.contains("<title>sent label 20:00: 1234.5</title>"));
        assert_eq!(attr(points[0], "fill"), "#1f77b4");
        assert_eq!(attr(points[0], "r"), "2.5");
    }

    #[test]
    fn points_rise_with_their_values() {
        let svg = render(&chart(
            YFormat::Count,
            vec![series("sent", &[Some(0.0), Some(5.0), Some(10.0)])],
            vec![],
        ));

        let points = tags(&svg, "circle class=\"point\"");
        let cy: Vec<f64> = points.iter().map(|p| number(p, "cy")).collect();
        let cx: Vec<f64> = points.iter().map(|p| number(p, "cx")).collect();
        assert!(cy[0] > cy[1] && cy[1] > cy[2], "{cy:?}");
        assert!(cx[0] < cx[1] && cx[1] < cx[2], "{cx:?}");
        assert!(
            (cy[0] - cy[1] - (cy[1] - cy[2])).abs() < 0.2,
            "not linear: {cy:?}"
        );
    }

    #[test]
    fn a_gap_breaks_the_line_and_a_lone_value_is_only_a_point() {
        let svg = render(&chart(
            YFormat::Count,
            vec![series(
                "sent",
                &[
                    Some(1.0),
                    Some(2.0),
                    None,
                    Some(3.0),
                    Some(4.0),
                    None,
                    Some(5.0),
                ],
            )],
            vec![],
        ));

        let path = attr(tags(&svg, "path ")[0], "d");
        assert_eq!(path.matches('M').count(), 2, "{path}");
        assert_eq!(path.matches('L').count(), 2, "{path}");
        assert_eq!(tags(&svg, "circle class=\"point\"").len(), 5);
    }

    #[test]
    fn a_series_without_neighbouring_values_has_no_line() {
        let svg = render(&chart(
            YFormat::Count,
            vec![series("sent", &[Some(1.0), None, Some(2.0)])],
            vec![],
        ));

        assert!(tags(&svg, "path ").is_empty());
        assert_eq!(tags(&svg, "circle class=\"point\"").len(), 2);
    }

    #[test]
    fn a_threshold_above_every_value_stretches_the_axis_and_stays_inside_the_plot() {
        let svg = render(&chart(
            YFormat::Count,
            vec![series("sent", &[Some(1.0), Some(2.0)])],
            vec![threshold("limit", 50.0)],
        ));

        let labels = texts_in(&svg, "<g class=\"y-labels\"");
        let top: f64 = labels.last().unwrap().parse().unwrap();
        assert!(top >= 50.0, "y axis tops out at {top}: {labels:?}");
        let line = tags(&svg, "line class=\"threshold\"")[0];
        assert_eq!(attr(line, "data-threshold"), "limit");
        assert_eq!(attr(line, "data-value"), "50");
        assert_eq!(attr(line, "stroke"), "#d62728");
        assert!(!attr(line, "stroke-dasharray").is_empty());
        let gridlines: Vec<f64> = tags(section(&svg, "<g class=\"grid\""), "line ")
            .iter()
            .map(|l| number(l, "y1"))
            .collect();
        let highest_gridline = gridlines.iter().copied().fold(f64::INFINITY, f64::min);
        let y = number(line, "y1");
        assert!(
            y >= highest_gridline,
            "threshold at {y} above the plot {gridlines:?}"
        );
        assert!(svg.contains("<title>limit limit: 50</title>"));
    }

    #[test]
    fn text_and_attributes_are_escaped() {
        let mut chart = chart(
            YFormat::Count,
            vec![Series {
                key: "a\"b".to_owned(),
                label: "<&\">'".to_owned(),
                color: "red",
                values: vec![Some(1.0)],
            }],
            vec![Threshold {
                key: "t<".to_owned(),
                label: "max & more".to_owned(),
                color: "blue",
                value: 2.0,
            }],
        );
        chart.title = "Bounces <&\"> 'today'".to_owned();
        chart.id = "x\"y".to_owned();
        chart.x_labels = vec!["<b>".to_owned()];

        let svg = render(&chart);

        assert!(!svg.contains("<&\">"));
        assert!(!svg.contains("<b>"));
        assert!(svg.contains(">Bounces &lt;&amp;&quot;&gt; &#39;today&#39;</title>"));
        assert!(svg.contains(">&lt;&amp;&quot;&gt;&#39;</text>"));
        assert!(svg.contains("data-series=\"a&quot;b\""));
        assert!(svg.contains("data-threshold=\"t&lt;\""));
        assert!(svg.contains("id=\"x&quot;y\""));
        assert!(svg.contains("data-x=\"&lt;b&gt;\""));
        assert!(svg.contains("<title>max &amp; more: 2</title>"));
        assert_well_formed(&svg);
    }

    #[test]
    fn characters_xml_forbids_are_replaced() {
        assert_eq!(escape("a\u{1}b\tc\n"), "a\u{FFFD}b\tc\n");
    }

    #[test]
    fn percent_axes_are_labelled_in_percent_with_the_decimals_the_step_needs() {
        let labels = |max: f64| {
            let svg = render(&chart(
                YFormat::Percent,
                vec![series("rate", &[Some(0.0), Some(max)])],
                vec![],
            ));
            texts_in(&svg, "<g class=\"y-labels\"")
                .into_iter()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        };

        assert_eq!(labels(0.05), ["0%", "1%", "2%", "3%", "4%", "5%"]);
        assert_eq!(
            labels(0.001),
            ["0%", "0.02%", "0.04%", "0.06%", "0.08%", "0.1%"]
        );
        assert_eq!(
            labels(0.011),
            ["0%", "0.25%", "0.5%", "0.75%", "1%", "1.25%"]
        );
        assert_eq!(labels(0.3), ["0%", "10%", "20%", "30%"]);
    }

    #[test]
    fn percent_tooltips_show_three_significant_digits() {
        assert_eq!(format_value(0.012_345, YFormat::Percent), "1.23%");
        assert_eq!(format_value(0.05, YFormat::Percent), "5%");
        assert_eq!(format_value(0.000_123_4, YFormat::Percent), "0.0123%");
        assert_eq!(format_value(0.0, YFormat::Percent), "0%");
        assert_eq!(format_value(1.0, YFormat::Percent), "100%");
        let svg = render(&chart(
            YFormat::Percent,
            vec![series("rate", &[Some(0.012_345)])],
            vec![],
        ));
        assert!(svg.contains("data-value=\"0.012345\""));
        assert!(svg.contains("<title>rate label 00:00: 1.23%</title>"));
    }

    #[test]
    fn large_counts_are_shortened_on_the_axis_only() {
        let svg = render(&chart(
            YFormat::Count,
            vec![series("sent", &[Some(23_456.0)])],
            vec![],
        ));

        assert_eq!(
            texts_in(&svg, "<g class=\"y-labels\""),
            ["0", "5k", "10k", "15k", "20k", "25k"]
        );
        assert!(svg.contains("<title>sent label 00:00: 23456</title>"));
    }

    #[test]
    fn the_axis_has_four_to_six_round_ticks_covering_the_maximum() {
        for format in [YFormat::Count, YFormat::Percent] {
            let mut max = 3.0e-6;
            while max < 1e12 {
                let scale = Scale::covering(max, format);
                let ticks = scale.intervals + 1;
                assert!(
                    scale.top() >= max * (1.0 - 1e-9),
                    "{max}: top {}",
                    scale.top()
                );
                // Whole steps cannot split a count of 2 or less into three intervals.
                if format == YFormat::Percent || max > 2.0 {
                    assert!((4..=6).contains(&ticks), "{max}: {ticks} ticks");
                    assert!(
                        scale.top() <= max * 2.5,
                        "{max}: top {} too far",
                        scale.top()
                    );
                }
                if format == YFormat::Count {
                    assert!(scale.step >= 1.0 && scale.step.fract() == 0.0, "{max}");
                }
                max *= 1.37;
            }
        }
    }

    #[test]
    fn small_counts_take_whole_steps() {
        let labels = |max: f64| {
            let scale = Scale::covering(max, YFormat::Count);
            (0..=scale.intervals)
                .map(|tick| scale.label(tick))
                .collect::<Vec<_>>()
        };

        assert_eq!(labels(2.0), ["0", "1", "2"]);
        assert_eq!(labels(0.4), ["0", "1"]);
        assert_eq!(labels(7.0), ["0", "2", "4", "6", "8"]);
    }

    #[test]
    fn all_zero_or_missing_data_falls_back_to_a_small_range_without_nan() {
        let cases = [
            chart(
                YFormat::Count,
                vec![series("sent", &[Some(0.0); 24])],
                vec![],
            ),
            chart(
                YFormat::Percent,
                vec![series("rate", &[Some(0.0); 24])],
                vec![],
            ),
            chart(YFormat::Count, vec![series("sent", &[None; 24])], vec![]),
            chart(YFormat::Count, vec![], vec![]),
            chart(YFormat::Count, vec![series("one", &[Some(0.0)])], vec![]),
            chart(
                YFormat::Percent,
                vec![series(
                    "odd",
                    &[Some(f64::NAN), Some(f64::INFINITY), Some(-1.0)],
                )],
                vec![threshold("nan", f64::NAN)],
            ),
        ];

        for chart in &cases {
            let svg = render(chart);

            let lower = svg.to_lowercase();
            assert!(!lower.contains("nan") && !lower.contains("inf"), "{svg}");
            assert_well_formed(&svg);
        }
        let count = render(&cases[0]);
        assert_eq!(texts_in(&count, "<g class=\"y-labels\""), ["0", "1"]);
        let percent = render(&cases[1]);
        assert_eq!(
            texts_in(&percent, "<g class=\"y-labels\""),
            ["0%", "0.2%", "0.4%", "0.6%", "0.8%", "1%"]
        );
        let odd = render(&cases[5]);
        assert_eq!(tags(&odd, "circle class=\"point\"").len(), 1);
        assert!(tags(&odd, "line class=\"threshold\"").is_empty());
    }

    #[test]
    fn nothing_uses_inline_styles() {
        let svg = render(&chart(
            YFormat::Percent,
            vec![
                series("a", &[Some(0.1), None, Some(0.2), Some(0.3)]),
                series("b", &[Some(0.05), Some(0.06), Some(0.07), None]),
            ],
            vec![threshold("limit", 0.1)],
        ));

        assert!(!svg.contains("style"), "{svg}");
        assert!(!svg.contains("<script"));
        assert!(!svg.contains("href"));
    }

    #[test]
    fn the_legend_lists_every_series_and_threshold_and_wraps() {
        let few = chart(
            YFormat::Count,
            vec![
                series("sent", &[Some(1.0)]),
                series("bounced", &[Some(1.0)]),
            ],
            vec![threshold("limit", 5.0)],
        );
        let many = chart(
            YFormat::Count,
            (0..12)
                .map(|i| series(&format!("series-{i}"), &[Some(1.0)]))
                .collect(),
            vec![threshold("limit", 5.0)],
        );

        let few_svg = render(&few);
        let many_svg = render(&many);

        let items = tags(&few_svg, "g class=\"legend-item\"");
        let keys: Vec<&str> = items.iter().map(|i| attr(i, "data-key")).collect();
        assert_eq!(keys, ["sent", "bounced", "limit"]);
        assert_eq!(attr(items[2], "data-kind"), "threshold");
        let swatches = tags(
            section_until(&few_svg, "<g class=\"legend\"", "</g>\n"),
            "line ",
        );
        assert!(swatches[2].contains("stroke-dasharray"));
        assert!(!swatches[0].contains("stroke-dasharray"));

        let many_items = tags(&many_svg, "g class=\"legend-item\"");
        assert_eq!(many_items.len(), 13);
        let legend = section_until(&many_svg, "<g class=\"legend\"", "</g>\n");
        let mut rows: Vec<f64> = tags(legend, "text ")
            .iter()
            .map(|t| number(t, "y"))
            .collect();
        rows.dedup();
        assert!(rows.len() >= 2, "one legend row: {rows:?}");
        for text in tags(legend, "text ") {
            assert!(number(text, "x") < WIDTH - 20.0, "legend runs off: {text}");
        }
        let height = |svg: &str| -> f64 {
            attr(tags(svg, "svg ")[0], "viewBox")
                .split(' ')
                .nth(3)
                .unwrap()
                .parse()
                .unwrap()
        };
        assert!(height(&many_svg) > height(&few_svg));
        assert!((280.0..=320.0).contains(&height(&few_svg)));
    }

    #[test]
    fn x_labels_are_drawn_every_tick_unless_they_would_overlap() {
        let mut sparse = chart(
            YFormat::Count,
            vec![series("sent", &[Some(1.0); 24])],
            vec![],
        );
        sparse.x_tick_every = 6;
        let mut dense = sparse.clone();
        dense.x_tick_every = 1;
        dense.series[0].values = vec![Some(1.0); 96];
        dense.x_labels = (0..96).map(|i| format!("{i:02}:00")).collect();

        let sparse_svg = render(&sparse);
        let dense_svg = render(&dense);

        assert_eq!(
            texts_in(&sparse_svg, "<g class=\"x-labels\""),
            ["00:00", "06:00", "12:00", "18:00"]
        );
        // The axis line, then one line per tick.
        let ticks = |svg: &str| tags(section(svg, "<g class=\"x-axis\""), "line ").len() - 1;
        assert_eq!(ticks(&sparse_svg), 4);
        assert_eq!(ticks(&dense_svg), 96);
        let xs: Vec<f64> = tags(section(&dense_svg, "<g class=\"x-labels\""), "text ")
            .iter()
            .map(|t| number(t, "x"))
            .collect();
        assert!(xs.len() > 4 && xs.len() < 20, "{} labels", xs.len());
        for pair in xs.windows(2) {
            assert!(pair[1] - pair[0] >= text_width("00:00"), "{xs:?}");
        }
    }

    #[test]
    fn coordinates_are_rounded_to_one_decimal() {
        let svg = render(&chart(
            YFormat::Percent,
            vec![series(
                "rate",
                &[Some(0.012_345), Some(0.033_333), Some(0.1)],
            )],
            vec![],
        ));

        for point in tags(&svg, "circle ") {
            for name in ["cx", "cy"] {
                let value = attr(point, name);
                let decimals = value.split('.').nth(1).map_or(0, str::len);
                assert!(decimals <= 1, "{name}={value}");
            }
        }
    }
}
