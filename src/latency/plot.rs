//! The one SVG drawing routine behind `bench --plot` and `report --plot`: a
//! figure of two stacked panels of line series. Size, margins, colours and
//! the legend's look live here; what each panel shows is the caller's.

use std::ops::Range;
use std::path::Path;

use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::prelude::*;

/// Width and height of every figure, in pixels.
const SIZE: (u32, u32) = (900, 760);
/// Space around each panel.
const MARGIN: u32 = 12;
/// Room for the x axis labels and description.
const X_LABEL_AREA: u32 = 40;
/// Room for the y axis labels and description.
const Y_LABEL_AREA: u32 = 70;
/// Radius of a series' point markers.
const MARKER_RADIUS: u32 = 3;
/// Length of the line sample in the legend.
const LEGEND_LINE: i32 = 20;
/// Opacity of the legend's white background (the lines show through a bit).
const LEGEND_BACKGROUND: f64 = 0.85;
/// Font of the panel captions.
const CAPTION_FONT: &str = "sans-serif";

/// The palette (matplotlib's), so both commands draw alike.
pub(crate) const BLUE: RGBColor = RGBColor(31, 119, 180);
pub(crate) const GREEN: RGBColor = RGBColor(44, 160, 44);
pub(crate) const ORANGE: RGBColor = RGBColor(255, 127, 14);
pub(crate) const RED: RGBColor = RGBColor(214, 39, 40);
pub(crate) const GREY: RGBColor = RGBColor(127, 127, 127);

/// How an axis maps values to pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scale {
    Linear,
    /// For values that span decades (client counts, latencies under load).
    Log,
}

/// One axis of a panel.
#[derive(Debug, Clone)]
pub(crate) struct Axis {
    /// Shown along the axis.
    pub desc: String,
    pub range: Range<f64>,
    pub scale: Scale,
}

/// One line of a panel.
#[derive(Debug, Clone)]
pub(crate) struct Series {
    /// Name in the legend; `None` keeps the series out of it.
    pub label: Option<&'static str>,
    pub color: RGBColor,
    /// Stroke width in pixels.
    pub width: u32,
    pub points: Vec<(f64, f64)>,
    /// Also mark each point with a dot: for few points far apart (one per
    /// bench row), where a bare line would hide where the figures are.
    pub markers: bool,
}

/// One chart of a figure.
#[derive(Debug, Clone)]
pub(crate) struct Panel {
    /// Title text and font size.
    pub caption: Option<(String, i32)>,
    pub x: Axis,
    pub y: Axis,
    /// Drawn in order, later ones on top.
    pub series: Vec<Series>,
    /// Where the legend goes; drawn only when some series has a label.
    pub legend: SeriesLabelPosition,
}

/// A figure: two panels, one above the other.
#[derive(Debug, Clone)]
pub(crate) struct Figure {
    /// Height of the top panel in pixels; the bottom one takes the rest.
    pub split: i32,
    pub top: Panel,
    pub bottom: Panel,
}

/// Why a figure could not be drawn (plotters' own message).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub(crate) struct PlotError(String);

fn plot_err(e: impl std::fmt::Display) -> PlotError {
    PlotError(e.to_string())
}

/// Draws `fig` as an SVG file at `path`.
pub(crate) fn write_svg(path: &Path, fig: &Figure) -> Result<(), PlotError> {
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(plot_err)?;
    let (top, bottom) = root.split_vertically(fig.split);
    draw_panel(&top, &fig.top)?;
    draw_panel(&bottom, &fig.bottom)?;
    root.present().map_err(plot_err)
}

/// Picks the coordinate types of a panel's two scales (plotters wants them
/// as types, not values).
fn draw_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    panel: &Panel,
) -> Result<(), PlotError> {
    let (x, y) = (panel.x.range.clone(), panel.y.range.clone());
    match (panel.x.scale, panel.y.scale) {
        (Scale::Linear, Scale::Linear) => draw_on(area, panel, x, y),
        (Scale::Linear, Scale::Log) => draw_on(area, panel, x, y.log_scale()),
        (Scale::Log, Scale::Linear) => draw_on(area, panel, x.log_scale(), y),
        (Scale::Log, Scale::Log) => draw_on(area, panel, x.log_scale(), y.log_scale()),
    }
}

fn draw_on<DB, X, Y>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    panel: &Panel,
    x: X,
    y: Y,
) -> Result<(), PlotError>
where
    DB: DrawingBackend,
    X: AsRangedCoord<Value = f64>,
    Y: AsRangedCoord<Value = f64>,
    X::CoordDescType: ValueFormatter<f64>,
    Y::CoordDescType: ValueFormatter<f64>,
{
    let mut builder = ChartBuilder::on(area);
    if let Some((text, size)) = &panel.caption {
        builder.caption(text, (CAPTION_FONT, *size));
    }
    let mut chart = builder
        .margin(MARGIN)
        .x_label_area_size(X_LABEL_AREA)
        .y_label_area_size(Y_LABEL_AREA)
        .build_cartesian_2d(x, y)
        .map_err(plot_err)?;
    chart
        .configure_mesh()
        .x_desc(panel.x.desc.as_str())
        .y_desc(panel.y.desc.as_str())
        .draw()
        .map_err(plot_err)?;
    for s in &panel.series {
        let color = s.color;
        let line = chart
            .draw_series(LineSeries::new(
                s.points.iter().copied(),
                color.stroke_width(s.width),
            ))
            .map_err(plot_err)?;
        if let Some(label) = s.label {
            line.label(label)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + LEGEND_LINE, y)], color));
        }
        if s.markers {
            chart
                .draw_series(PointSeries::of_element(
                    s.points.iter().copied(),
                    MARKER_RADIUS,
                    color,
                    &|c, r, st| EmptyElement::at(c) + Circle::new((0, 0), r, st.filled()),
                ))
                .map_err(plot_err)?;
        }
    }
    if panel.series.iter().any(|s| s.label.is_some()) {
        chart
            .configure_series_labels()
            .position(panel.legend.clone())
            .background_style(WHITE.mix(LEGEND_BACKGROUND))
            .border_style(BLACK)
            .draw()
            .map_err(plot_err)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn panel(scale: Scale, label: Option<&'static str>) -> Panel {
        Panel {
            caption: Some(("a caption".into(), 20)),
            x: Axis {
                desc: "x axis".into(),
                range: 1.0..100.0,
                scale,
            },
            y: Axis {
                desc: "y axis".into(),
                range: 1.0..10.0,
                scale: Scale::Linear,
            },
            series: vec![Series {
                label,
                color: BLUE,
                width: 2,
                points: vec![(1.0, 2.0), (10.0, 5.0), (100.0, 3.0)],
                markers: true,
            }],
            legend: SeriesLabelPosition::UpperLeft,
        }
    }

    #[test]
    fn draws_both_panels_and_the_legend_only_for_labels() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("f.svg");
        let fig = Figure {
            split: 380,
            top: panel(Scale::Log, Some("labelled series")),
            bottom: panel(Scale::Linear, None),
        };
        write_svg(&path, &fig).expect("drawn");
        let svg = std::fs::read_to_string(&path).expect("written");
        assert!(svg.starts_with("<svg"), "{}", &svg[..svg.len().min(80)]);
        assert_eq!(svg.matches("a caption").count(), 2);
        assert_eq!(svg.matches("labelled series").count(), 1);
        assert!(svg.contains("x axis") && svg.contains("y axis"));
    }

    #[test]
    fn an_unwritable_path_is_an_error() {
        let dir = tempfile::tempdir().expect("temp dir");
        let fig = Figure {
            split: 380,
            top: panel(Scale::Linear, None),
            bottom: panel(Scale::Linear, None),
        };
        let err = write_svg(&dir.path().join("no/such/dir/f.svg"), &fig);
        assert!(err.is_err());
    }
}
