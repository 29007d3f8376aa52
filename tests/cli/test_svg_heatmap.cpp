// The SVG heatmap writer on its own: viridis at its anchors, the document's structure, blank cells for missing
// values, escaped text, and the shape checks.
#include <gtest/gtest.h>

#include <algorithm>

#include "cli_support.h"
#include "hax/engine/error.h"
#include "hax/io/svg_heatmap.h"

namespace hax::io {
namespace {

std::string hex(Rgb c) {
  char text[8];
  std::snprintf(text, sizeof text, "#%02x%02x%02x", c.r, c.g, c.b);
  return text;
}

TEST(Viridis, RunsFromPurpleToYellowAndClamps) {
  EXPECT_EQ(hex(viridis(0.0)), "#440154");
  EXPECT_EQ(hex(viridis(0.5)), "#21908c");
  EXPECT_EQ(hex(viridis(1.0)), "#fde725");
  EXPECT_EQ(hex(viridis(-3.0)), "#440154");
  EXPECT_EQ(hex(viridis(7.0)), "#fde725");
  // Perceived lightness rises along the map: the property that makes it readable.
  double previous = -1;
  for (int i = 0; i <= 20; ++i) {
    const Rgb c = viridis(i / 20.0);
    const double luma = 0.299 * c.r + 0.587 * c.g + 0.114 * c.b;
    EXPECT_GT(luma, previous) << i;
    previous = luma;
  }
}

Heatmap two_by_three() {
  Heatmap map;
  map.title = "R&D <accuracy>";
  map.column_axis = "n_key";
  map.row_axis = "n_context";
  map.columns = {"2", "3", "4"};
  map.rows = {"5", "6"};
  map.values = {100.0, 50.0, 0.0, 12.34, std::nullopt, 99.99};
  return map;
}

TEST(SvgHeatmap, DrawsEveryCellWithItsValue) {
  const std::string svg = heatmap_svg(two_by_three());
  const std::vector<std::string> elements = testing::xml_elements(svg);
  EXPECT_EQ(elements.front(), "svg");
  EXPECT_EQ(std::count(elements.begin(), elements.end(), "rect"), 6 + 2);  // cells, background, legend bar
  for (const char* value : {">100.0<", ">50.0<", ">0.0<", ">12.3<"}) EXPECT_NE(svg.find(value), svg.npos);
  EXPECT_NE(svg.find("fill=\"#fde725\""), svg.npos);  // 100 is the top of the scale
  EXPECT_NE(svg.find("fill=\"#440154\""), svg.npos);  // 0 the bottom
  EXPECT_NE(svg.find("fill=\"#eeeeee\""), svg.npos);  // the missing cell, blank
  EXPECT_NE(svg.find("R&amp;D &lt;accuracy&gt;"), svg.npos);
  EXPECT_EQ(svg.find("<accuracy>"), svg.npos);
}

TEST(SvgHeatmap, RejectsAWrongValueCountOrAnEmptyScale) {
  Heatmap map = two_by_three();
  map.values.pop_back();
  EXPECT_THROW(heatmap_svg(map), Error);
  map = two_by_three();
  map.scale_max = map.scale_min;
  EXPECT_THROW(heatmap_svg(map), Error);
}

}  // namespace
}  // namespace hax::io
