// Lines over a shared x axis drawn as a standalone SVG chart (what `hax sweep` writes as its accuracy curves): a
// polyline per series, axes with evenly spaced "nice" ticks, a title and a legend beside the plot. Colors come from
// a categorical palette chosen to stay distinct for color-blind readers (Okabe-Ito, then Tableau's); a series can
// be dashed and thin, and kept out of the legend (one seed of several). Plain text, in the style of svg_heatmap.
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace hax::io {

struct LineSeries {
  std::string label;
  std::vector<std::pair<double, double>> points;  // (x, y), drawn in the order given
  int color = 0;                                  // index into the palette (wraps around)
  bool dashed = false;
  double width = 2.0;
  bool in_legend = true;
};

struct LineChart {
  std::string title;
  std::string x_axis, y_axis;
  std::vector<LineSeries> series;
  std::optional<double> x_min, y_min, y_max;  // default: the data's range
};

// "Nice" tick values (1, 2 or 5 times a power of ten apart) covering [low, high], about `count` of them.
std::vector<double> nice_ticks(double low, double high, int count = 5);

// The SVG document. A chart with no points draws its axes and legend over [0, 1] x [0, 1].
std::string line_chart_svg(const LineChart& chart);

}  // namespace hax::io
