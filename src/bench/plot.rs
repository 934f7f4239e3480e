//! Line charts as SVG (plotters' SVG backend: text is left to the viewer's fonts, so nothing is
//! needed at build time). A logarithmic axis plots log10 of its values and labels the ticks
//! with the values themselves.

use anyhow::anyhow;
use plotters::prelude::*;

/// How an axis maps its values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Axis {
    Linear,
    Log,
}

impl Axis {
    fn to_plot(self, value: f64) -> f64 {
        match self {
            Axis::Linear => value,
            Axis::Log => value.max(f64::MIN_POSITIVE).log10(),
        }
    }

    fn label(self, plotted: f64) -> String {
        let value = match self {
            Axis::Linear => plotted,
            Axis::Log => 10f64.powf(plotted),
        };
        short_number(value)
    }
}

/// `1234567` as `1.23M`, `0.00123` as `0.00123`: three significant digits.
pub fn short_number(value: f64) -> String {
    let magnitude = value.abs();
    let (scaled, suffix) = if magnitude >= 1e9 {
        (value / 1e9, "G")
    } else if magnitude >= 1e6 {
        (value / 1e6, "M")
    } else if magnitude >= 1e4 {
        (value / 1e3, "k")
    } else {
        (value, "")
    };
    if scaled == 0.0 {
        return "0".to_string();
    }
    let digits_before = scaled.abs().log10().floor() as i32 + 1;
    let decimals = (3 - digits_before).max(0) as usize;
    format!("{scaled:.decimals$}{suffix}")
}

/// One named line of points `(x, y)`.
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

/// A chart of several series on shared axes.
pub struct Chart<'a> {
    pub title: &'a str,
    pub x_label: &'a str,
    pub y_label: &'a str,
    pub x_axis: Axis,
    pub y_axis: Axis,
}

impl Chart<'_> {
    /// Draws `series` as an SVG document (points on log axes must be positive; others are left
    /// out).
    pub fn svg(&self, series: &[Series]) -> anyhow::Result<String> {
        let plotted: Vec<(&str, Vec<(f64, f64)>)> = series
            .iter()
            .map(|s| {
                let points = s
                    .points
                    .iter()
                    .filter(|(x, y)| {
                        x.is_finite()
                            && y.is_finite()
                            && (self.x_axis == Axis::Linear || *x > 0.0)
                            && (self.y_axis == Axis::Linear || *y > 0.0)
                    })
                    .map(|&(x, y)| (self.x_axis.to_plot(x), self.y_axis.to_plot(y)))
                    .collect();
                (s.name.as_str(), points)
            })
            .collect();
        let all = || plotted.iter().flat_map(|(_, points)| points.iter());
        let (x_range, y_range) = (
            padded(all().map(|p| p.0), self.x_axis),
            padded(all().map(|p| p.1), self.y_axis),
        );
        let mut svg = String::new();
        {
            let root = SVGBackend::with_string(&mut svg, (760, 440)).into_drawing_area();
            root.fill(&WHITE).map_err(|e| anyhow!("{e:?}"))?;
            let mut chart = ChartBuilder::on(&root)
                .caption(self.title, ("sans-serif", 18))
                .margin(14)
                .x_label_area_size(44)
                .y_label_area_size(72)
                .build_cartesian_2d(x_range, y_range)
                .map_err(|e| anyhow!("{e:?}"))?;
            let (x_axis, y_axis) = (self.x_axis, self.y_axis);
            chart
                .configure_mesh()
                .x_desc(self.x_label)
                .y_desc(self.y_label)
                .x_label_formatter(&|v| x_axis.label(*v))
                .y_label_formatter(&|v| y_axis.label(*v))
                .light_line_style(WHITE.mix(0.0))
                .draw()
                .map_err(|e| anyhow!("{e:?}"))?;
            for (i, (name, points)) in plotted.iter().enumerate() {
                let color = Palette99::pick(i).to_rgba();
                chart
                    .draw_series(LineSeries::new(
                        points.iter().copied(),
                        color.stroke_width(2),
                    ))
                    .map_err(|e| anyhow!("{e:?}"))?
                    .label(*name)
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                    });
                chart
                    .draw_series(points.iter().map(|&p| Circle::new(p, 3, color.filled())))
                    .map_err(|e| anyhow!("{e:?}"))?;
            }
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperRight)
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .draw()
                .map_err(|e| anyhow!("{e:?}"))?;
            root.present().map_err(|e| anyhow!("{e:?}"))?;
        }
        Ok(svg)
    }
}

/// The range of `values` with a margin (a decade's tenth on a log axis); a single value gets a
/// range around it, no values the range 0..1.
fn padded(values: impl Iterator<Item = f64>, axis: Axis) -> std::ops::Range<f64> {
    let (min, max) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    if !min.is_finite() {
        return 0.0..1.0;
    }
    let span = max - min;
    let pad = if span > 0.0 {
        span * 0.06
    } else if axis == Axis::Log {
        0.5
    } else {
        min.abs().max(1.0) * 0.1
    };
    let low = if axis == Axis::Linear && min >= 0.0 && min - pad < 0.0 {
        0.0
    } else {
        min - pad
    };
    low..max + pad
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_shortened_to_three_significant_digits() {
        assert_eq!(short_number(1_234_567.0), "1.23M");
        assert_eq!(short_number(52_000.0), "52.0k");
        assert_eq!(short_number(999.0), "999");
        assert_eq!(short_number(5.0), "5.00");
        assert_eq!(short_number(0.00123), "0.00123");
        assert_eq!(short_number(0.0), "0");
    }

    #[test]
    fn a_chart_is_an_svg_with_its_title_labels_and_series() {
        let chart = Chart {
            title: "rows/s against workers",
            x_label: "workers",
            y_label: "rows/s",
            x_axis: Axis::Linear,
            y_axis: Axis::Log,
        };
        let svg = chart
            .svg(&[
                Series {
                    name: "no updates".into(),
                    points: vec![(1.0, 500_000.0), (2.0, 900_000.0)],
                },
                Series {
                    name: "zero is left out on a log axis".into(),
                    points: vec![(1.0, 0.0), (2.0, 100_000.0)],
                },
            ])
            .unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..40]);
        for text in [
            "rows/s against workers",
            "workers",
            "no updates",
            "zero is left out",
        ] {
            assert!(svg.contains(text), "{text} missing");
        }
        assert_eq!(
            svg.matches("<circle").count(),
            3,
            "one circle per plotted point"
        );
    }
}
