// A grid of numbers drawn as a standalone SVG heatmap (what `hax eval --heatmap` writes): one colored cell per
// value with the value printed in it, tick and axis labels, a title and a color-scale legend. Colors come from
// viridis, a perceptually uniform colormap that stays readable in grayscale and for color-blind readers. SVG is
// plain text, so it needs no image library and diffs well.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace hax::io {

struct Rgb {
  std::uint8_t r = 0, g = 0, b = 0;
};

// Text with XML's special characters (& < > ") escaped, for SVG text and attributes.
std::string escape_xml(const std::string& text);

// Viridis at t in [0, 1] (clamped): dark purple at 0, yellow at 1.
Rgb viridis(double t);

struct Heatmap {
  std::string title;
  std::string column_axis, row_axis;               // axis names, e.g. "n_key" and "n_context"
  std::vector<std::string> columns, rows;          // tick labels, left to right and top to bottom
  std::vector<std::optional<double>> values;       // rows x columns, row-major; nullopt: no data (a blank cell)
  double scale_min = 0, scale_max = 100;           // the values mapped to the two ends of the colormap
  int decimals = 1;                                // digits after the point in the printed values
};

// The SVG document. Throws hax::Error if `values` does not hold rows x columns entries or the scale is empty.
std::string heatmap_svg(const Heatmap& map);

}  // namespace hax::io
