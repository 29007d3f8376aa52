#include "hax/io/svg_lines.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <limits>
#include <sstream>

#include "hax/io/svg_heatmap.h"

namespace hax::io {
namespace {

// Okabe-Ito without its yellow (too pale on white), then Tableau 10's colors that differ from those.
constexpr std::array<const char*, 11> kPalette{"#0072b2", "#d55e00", "#009e73", "#cc79a7", "#e69f00", "#56b4e9",
                                               "#000000", "#9467bd", "#8c564b", "#7f7f7f", "#bcbd22"};

// Layout, in SVG user units (pixels).
constexpr int kLeft = 72;          // y tick labels and the y axis name
constexpr int kTop = 48;           // title
constexpr int kPlotWidth = 480;
constexpr int kPlotHeight = 320;
constexpr int kBottom = 60;        // x tick labels and the x axis name
constexpr int kLegendGap = 24;
constexpr int kLegendLine = 28;    // the line sample before each legend label
constexpr int kLegendRow = 18;
constexpr int kCharWidth = 7;      // a generous estimate for 12-pixel text, so legend labels never clip
constexpr int kTitleCharWidth = 10;

struct Range {
  double low, high;
};

std::string format(double value) {
  char text[32];
  std::snprintf(text, sizeof text, "%g", value);
  return text;
}

Range data_range(const LineChart& chart, bool y) {
  Range r{std::numeric_limits<double>::infinity(), -std::numeric_limits<double>::infinity()};
  for (const LineSeries& s : chart.series)
    for (const auto& [px, py] : s.points) {
      const double v = y ? py : px;
      if (!std::isfinite(v)) continue;
      r.low = std::min(r.low, v);
      r.high = std::max(r.high, v);
    }
  if (r.low > r.high) r = {0, 1};
  if (!y && chart.x_min) r.low = *chart.x_min;
  if (y && chart.y_min) r.low = *chart.y_min;
  if (y && chart.y_max) r.high = *chart.y_max;
  return r;
}

// The axis' extent: its first and last nice tick.
Range axis_of(const std::vector<double>& ticks) { return {ticks.front(), ticks.back()}; }

struct Frame {
  Range x, y;
  double px(double v) const { return kLeft + (v - x.low) / (x.high - x.low) * kPlotWidth; }
  double py(double v) const { return kTop + kPlotHeight - (v - y.low) / (y.high - y.low) * kPlotHeight; }
};

std::string stroke(const LineSeries& s) {
  std::ostringstream out;
  out << "stroke=\"" << kPalette[static_cast<std::size_t>(std::max(s.color, 0)) % kPalette.size()]
      << "\" stroke-width=\"" << s.width << "\"" << (s.dashed ? " stroke-dasharray=\"6 4\"" : "");
  return out.str();
}

void draw_axes(std::ostream& svg, const LineChart& chart, const Frame& f, const std::vector<double>& x_ticks,
               const std::vector<double>& y_ticks) {
  const int bottom = kTop + kPlotHeight;
  svg << "<rect x=\"" << kLeft << "\" y=\"" << kTop << "\" width=\"" << kPlotWidth << "\" height=\"" << kPlotHeight
      << "\" fill=\"none\" stroke=\"#000000\"/>\n";
  for (double t : x_ticks) {
    svg << "<line x1=\"" << f.px(t) << "\" y1=\"" << bottom << "\" x2=\"" << f.px(t) << "\" y2=\"" << bottom + 5
        << "\" stroke=\"#000000\"/>\n<text x=\"" << f.px(t) << "\" y=\"" << bottom + 18
        << "\" text-anchor=\"middle\" font-size=\"11\">" << format(t) << "</text>\n";
  }
  for (double t : y_ticks) {
    svg << "<line x1=\"" << kLeft << "\" y1=\"" << f.py(t) << "\" x2=\"" << kLeft + kPlotWidth << "\" y2=\""
        << f.py(t) << "\" stroke=\"#dddddd\"/>\n<line x1=\"" << kLeft - 5 << "\" y1=\"" << f.py(t) << "\" x2=\""
        << kLeft << "\" y2=\"" << f.py(t) << "\" stroke=\"#000000\"/>\n<text x=\"" << kLeft - 8 << "\" y=\""
        << f.py(t) << "\" text-anchor=\"end\" dominant-baseline=\"central\" font-size=\"11\">" << format(t)
        << "</text>\n";
  }
  svg << "<text x=\"" << kLeft + kPlotWidth / 2 << "\" y=\"" << bottom + 44 << "\" text-anchor=\"middle\" "
      << "font-size=\"13\">" << escape_xml(chart.x_axis) << "</text>\n<text x=\"18\" y=\"" << kTop + kPlotHeight / 2
      << "\" text-anchor=\"middle\" font-size=\"13\" transform=\"rotate(-90 18 " << kTop + kPlotHeight / 2 << ")\">"
      << escape_xml(chart.y_axis) << "</text>\n";
}

void draw_series(std::ostream& svg, const LineChart& chart, const Frame& f) {
  for (const LineSeries& s : chart.series) {
    if (s.points.empty()) continue;
    svg << "<polyline class=\"series\" fill=\"none\" " << stroke(s) << " points=\"";
    for (std::size_t i = 0; i < s.points.size(); ++i)
      svg << (i ? " " : "") << f.px(s.points[i].first) << "," << f.py(s.points[i].second);
    svg << "\"><title>" << escape_xml(s.label) << "</title></polyline>\n";
  }
}

void draw_legend(std::ostream& svg, const LineChart& chart) {
  const int x = kLeft + kPlotWidth + kLegendGap;
  int y = kTop + 6;
  for (const LineSeries& s : chart.series) {
    if (!s.in_legend) continue;
    LineSeries sample = s;
    sample.width = std::max(s.width, 2.0);
    svg << "<line class=\"legend\" x1=\"" << x << "\" y1=\"" << y << "\" x2=\"" << x + kLegendLine - 6 << "\" y2=\""
        << y << "\" " << stroke(sample) << "/>\n<text x=\"" << x + kLegendLine << "\" y=\"" << y
        << "\" dominant-baseline=\"central\" font-size=\"12\">" << escape_xml(s.label) << "</text>\n";
    y += kLegendRow;
  }
}

}  // namespace

std::vector<double> nice_ticks(double low, double high, int count) {
  if (!(high > low)) {
    low -= 0.5;
    high += 0.5;
  }
  const double raw = (high - low) / std::max(count, 1);
  const double magnitude = std::pow(10.0, std::floor(std::log10(raw)));
  double step = magnitude;
  for (double m : {2.0, 5.0, 10.0})
    if (raw > step) step = m * magnitude;
  std::vector<double> ticks;
  const long first = std::lround(std::floor(low / step + 1e-9)), last = std::lround(std::ceil(high / step - 1e-9));
  for (long i = first; i <= last; ++i) ticks.push_back(static_cast<double>(i) * step);
  return ticks;
}

std::string line_chart_svg(const LineChart& chart) {
  const Range xr = data_range(chart, false), yr = data_range(chart, true);
  const std::vector<double> x_ticks = nice_ticks(xr.low, xr.high), y_ticks = nice_ticks(yr.low, yr.high);
  const Frame frame{axis_of(x_ticks), axis_of(y_ticks)};
  std::size_t longest = 0, entries = 0;
  for (const LineSeries& s : chart.series)
    if (s.in_legend) {
      longest = std::max(longest, s.label.size());
      ++entries;
    }
  const int chart_width = kLeft + kPlotWidth + kLegendGap + kLegendLine + static_cast<int>(longest) * kCharWidth + 16;
  const int width = std::max(chart_width, static_cast<int>(chart.title.size()) * kTitleCharWidth + 32);
  const int height = std::max(kTop + kPlotHeight + kBottom, kTop + static_cast<int>(entries) * kLegendRow + 16);
  std::ostringstream svg;
  svg << "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
      << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << width << "\" height=\"" << height
      << "\" viewBox=\"0 0 " << width << " " << height << "\" font-family=\"sans-serif\">\n"
      << "<rect width=\"100%\" height=\"100%\" fill=\"#ffffff\"/>\n"
      << "<text x=\"" << width / 2 << "\" y=\"" << kTop / 2 << "\" text-anchor=\"middle\" dominant-baseline=\"central\""
      << " font-size=\"16\" font-weight=\"bold\">" << escape_xml(chart.title) << "</text>\n";
  draw_axes(svg, chart, frame, x_ticks, y_ticks);
  draw_series(svg, chart, frame);
  draw_legend(svg, chart);
  svg << "</svg>\n";
  return svg.str();
}

}  // namespace hax::io
