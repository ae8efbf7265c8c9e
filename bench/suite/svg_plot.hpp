// A minimal SVG line chart (self-contained file that any browser opens): axes with rounded
// ticks, optional log-scale y, one polyline with markers per series, and a legend.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace crt::bench {

struct Series {
  std::string name;
  std::string color;  // any CSS colour
  bool dashed = false;
  std::vector<std::pair<double, double>> points;  // (x, y), drawn in the given order
};

struct LineChart {
  std::string title, x_label, y_label;
  bool log_y = false;
  std::vector<Series> series;
};

// The chart as an SVG document (width x height pixels). Series without points are skipped;
// with no points at all the plot area says so.
std::string render_svg(const LineChart& chart, int width = 760, int height = 460);

// Distinct colours for the i-th series.
const char* series_color(std::size_t i);

}  // namespace crt::bench
