#include "hax/io/svg_heatmap.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <sstream>

#include "hax/engine/error.h"

namespace hax::io {
namespace {

// Viridis sampled at 9 evenly spaced points (matplotlib's colormap data); linear interpolation between them
// stays within a barely visible distance of the full 256-entry table.
constexpr std::array<Rgb, 9> kViridisAnchors{{{0x44, 0x01, 0x54},
                                              {0x47, 0x2d, 0x7b},
                                              {0x3b, 0x52, 0x8b},
                                              {0x2c, 0x72, 0x8e},
                                              {0x21, 0x90, 0x8c},
                                              {0x27, 0xad, 0x81},
                                              {0x5d, 0xc8, 0x63},
                                              {0xaa, 0xdc, 0x32},
                                              {0xfd, 0xe7, 0x25}}};

// Layout, in SVG user units (pixels).
constexpr int kCell = 48;
constexpr int kLeft = 96;          // row axis name and row tick labels
constexpr int kTop = 48;           // title
constexpr int kBottom = 64;        // column tick labels and column axis name
constexpr int kLegendGap = 28;     // between the grid and the color bar
constexpr int kLegendBar = 16;
constexpr int kLegendLabels = 52;  // tick labels right of the color bar
constexpr int kLegendStops = 16;   // gradient stops: enough that the bar shows the colormap's curve
constexpr int kScaleTicks = 5;
constexpr int kTitleCharWidth = 10;  // a generous estimate for 16-pixel bold text, so a long title never clips

std::string hex(Rgb c) {
  char text[8];
  std::snprintf(text, sizeof text, "#%02x%02x%02x", c.r, c.g, c.b);
  return text;
}

std::string number(double value, int decimals) {
  char text[32];
  std::snprintf(text, sizeof text, "%.*f", decimals, value);
  return text;
}

// Scale ticks without trailing zeros: 0, 25, 50, 12.5.
std::string tick_label(double value) {
  char text[32];
  std::snprintf(text, sizeof text, "%g", value);
  return text;
}

// Dark text on the light (yellow-green) end of the map, white on the dark end, so every value stays legible.
const char* text_color_on(Rgb c) { return 0.299 * c.r + 0.587 * c.g + 0.114 * c.b > 140 ? "#000000" : "#ffffff"; }

double scale_position(const Heatmap& map, double value) {
  return (value - map.scale_min) / (map.scale_max - map.scale_min);
}

void draw_title(std::ostream& svg, const Heatmap& map, int width) {
  svg << "<text x=\"" << width / 2 << "\" y=\"" << kTop / 2 << "\" text-anchor=\"middle\" dominant-baseline=\"central\""
      << " font-size=\"16\" font-weight=\"bold\">" << escape_xml(map.title) << "</text>\n";
}

void draw_cells(std::ostream& svg, const Heatmap& map) {
  const std::size_t columns = map.columns.size();
  for (std::size_t r = 0; r < map.rows.size(); ++r) {
    for (std::size_t c = 0; c < columns; ++c) {
      const std::optional<double>& value = map.values[r * columns + c];
      const int x = kLeft + static_cast<int>(c) * kCell, y = kTop + static_cast<int>(r) * kCell;
      const Rgb fill = value ? viridis(scale_position(map, *value)) : Rgb{0xee, 0xee, 0xee};
      svg << "<rect class=\"cell\" x=\"" << x << "\" y=\"" << y << "\" width=\"" << kCell << "\" height=\"" << kCell
          << "\" fill=\"" << hex(fill) << "\" stroke=\"#ffffff\"/>\n";
      if (!value) continue;
      svg << "<text x=\"" << x + kCell / 2 << "\" y=\"" << y + kCell / 2 << "\" text-anchor=\"middle\""
          << " dominant-baseline=\"central\" font-size=\"12\" fill=\"" << text_color_on(fill) << "\">"
          << number(*value, map.decimals) << "</text>\n";
    }
  }
}

void draw_axes(std::ostream& svg, const Heatmap& map) {
  const int grid_width = static_cast<int>(map.columns.size()) * kCell;
  const int grid_height = static_cast<int>(map.rows.size()) * kCell;
  for (std::size_t c = 0; c < map.columns.size(); ++c)
    svg << "<text x=\"" << kLeft + static_cast<int>(c) * kCell + kCell / 2 << "\" y=\"" << kTop + grid_height + 16
        << "\" text-anchor=\"middle\" font-size=\"12\">" << escape_xml(map.columns[c]) << "</text>\n";
  for (std::size_t r = 0; r < map.rows.size(); ++r)
    svg << "<text x=\"" << kLeft - 8 << "\" y=\"" << kTop + static_cast<int>(r) * kCell + kCell / 2
        << "\" text-anchor=\"end\" dominant-baseline=\"central\" font-size=\"12\">" << escape_xml(map.rows[r])
        << "</text>\n";
  svg << "<text x=\"" << kLeft + grid_width / 2 << "\" y=\"" << kTop + grid_height + 44
      << "\" text-anchor=\"middle\" font-size=\"14\">" << escape_xml(map.column_axis) << "</text>\n";
  const int row_axis_x = 24, row_axis_y = kTop + grid_height / 2;
  svg << "<text x=\"" << row_axis_x << "\" y=\"" << row_axis_y << "\" text-anchor=\"middle\" font-size=\"14\""
      << " transform=\"rotate(-90 " << row_axis_x << " " << row_axis_y << ")\">" << escape_xml(map.row_axis)
      << "</text>\n";
}

// A vertical color bar beside the grid, scale_max at the top, with evenly spaced tick labels.
void draw_legend(std::ostream& svg, const Heatmap& map) {
  const int x = kLeft + static_cast<int>(map.columns.size()) * kCell + kLegendGap;
  const int height = static_cast<int>(map.rows.size()) * kCell;
  svg << "<defs><linearGradient id=\"scale\" x1=\"0\" y1=\"1\" x2=\"0\" y2=\"0\">\n";
  for (int i = 0; i <= kLegendStops; ++i) {
    const double t = static_cast<double>(i) / kLegendStops;
    svg << "<stop offset=\"" << number(t, 4) << "\" stop-color=\"" << hex(viridis(t)) << "\"/>\n";
  }
  svg << "</linearGradient></defs>\n";
  svg << "<rect class=\"legend\" x=\"" << x << "\" y=\"" << kTop << "\" width=\"" << kLegendBar << "\" height=\""
      << height << "\" fill=\"url(#scale)\" stroke=\"#000000\" stroke-width=\"0.5\"/>\n";
  for (int i = 0; i < kScaleTicks; ++i) {
    const double t = static_cast<double>(i) / (kScaleTicks - 1);
    const double y = kTop + height * (1 - t);
    const double value = map.scale_min + t * (map.scale_max - map.scale_min);
    svg << "<line x1=\"" << x + kLegendBar << "\" y1=\"" << y << "\" x2=\"" << x + kLegendBar + 4 << "\" y2=\"" << y
        << "\" stroke=\"#000000\"/>\n";
    svg << "<text x=\"" << x + kLegendBar + 7 << "\" y=\"" << y << "\" dominant-baseline=\"central\" font-size=\"11\">"
        << tick_label(value) << "</text>\n";
  }
}

}  // namespace

std::string escape_xml(const std::string& text) {
  std::string out;
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

Rgb viridis(double t) {
  t = std::isnan(t) ? 0.0 : std::clamp(t, 0.0, 1.0);
  const double at = t * (kViridisAnchors.size() - 1);
  const std::size_t low = std::min(static_cast<std::size_t>(at), kViridisAnchors.size() - 2);
  const double f = at - static_cast<double>(low);
  const Rgb a = kViridisAnchors[low], b = kViridisAnchors[low + 1];
  auto mix = [f](std::uint8_t x, std::uint8_t y) { return static_cast<std::uint8_t>(std::lround(x + f * (y - x))); };
  return {mix(a.r, b.r), mix(a.g, b.g), mix(a.b, b.b)};
}

std::string heatmap_svg(const Heatmap& map) {
  check(map.values.size() == map.rows.size() * map.columns.size(), "heatmap: ", map.values.size(),
        " values for a grid of ", map.rows.size(), " x ", map.columns.size());
  check(map.scale_max > map.scale_min, "heatmap: empty color scale [", map.scale_min, ", ", map.scale_max, "]");
  const int chart_width =
      kLeft + static_cast<int>(map.columns.size()) * kCell + kLegendGap + kLegendBar + kLegendLabels;
  const int width = std::max(chart_width, static_cast<int>(map.title.size()) * kTitleCharWidth + 2 * kCell);
  const int height = kTop + static_cast<int>(map.rows.size()) * kCell + kBottom;
  std::ostringstream svg;
  svg << "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
      << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << width << "\" height=\"" << height
      << "\" viewBox=\"0 0 " << width << " " << height << "\" font-family=\"sans-serif\">\n"
      << "<rect width=\"100%\" height=\"100%\" fill=\"#ffffff\"/>\n";
  draw_title(svg, map, width);
  svg << "<g transform=\"translate(" << (width - chart_width) / 2 << " 0)\">\n";  // centered under a wide title
  draw_cells(svg, map);
  draw_axes(svg, map);
  draw_legend(svg, map);
  svg << "</g>\n</svg>\n";
  return svg.str();
}

}  // namespace hax::io
