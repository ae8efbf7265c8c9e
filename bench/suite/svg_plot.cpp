// SVG line charts (see svg_plot.hpp).
#include "bench/suite/svg_plot.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <sstream>

namespace crt::bench {

namespace {

std::string escape(const std::string& s) {
  std::string out;
  for (char ch : s) {
    switch (ch) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      default: out += ch;
    }
  }
  return out;
}

std::string fmt(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", v);
  return buf;
}

// Tick label: 3 significant digits with an SI suffix (1.5k, 2G, 0.25).
std::string tick_label(double v) {
  const char* units[] = {"", "k", "M", "G", "T", "P"};
  int u = 0;
  double a = std::abs(v);
  while (a >= 1000 && u < 5) {
    a /= 1000;
    v /= 1000;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3g%s", v, units[u]);
  return buf;
}

// "Nice" linear ticks covering [lo, hi]: steps of 1, 2 or 5 times a power of ten.
std::vector<double> linear_ticks(double lo, double hi, int target) {
  const double span = hi - lo > 0 ? hi - lo : std::max(1.0, std::abs(hi));
  const double raw = span / target;
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  double step = mag;
  for (double m : {1.0, 2.0, 5.0, 10.0})
    if (m * mag >= raw) {
      step = m * mag;
      break;
    }
  // From the last step at or below lo to the first at or above hi.
  std::vector<double> ticks;
  const double first = std::floor(lo / step), last = std::ceil(hi / step - 1e-9);
  for (double k = first; k <= last; k += 1) ticks.push_back(k * step);
  return ticks;
}

}  // namespace

const char* series_color(std::size_t i) {
  static const char* colors[] = {"#1f77b4", "#d62728", "#2ca02c", "#9467bd",
                                 "#ff7f0e", "#17becf", "#8c564b", "#e377c2"};
  return colors[i % (sizeof colors / sizeof colors[0])];
}

std::string render_svg(const LineChart& chart, int width, int height) {
  const double left = 90, right = 200, top = 50, bottom = 60;
  const double pw = width - left - right, ph = height - top - bottom;
  double xmin = std::numeric_limits<double>::infinity(), xmax = -xmin;
  double ymin = xmin, ymax = -xmin;
  for (const Series& s : chart.series)
    for (const auto& [x, y] : s.points) {
      if (!std::isfinite(x) || !std::isfinite(y) || (chart.log_y && y <= 0)) continue;
      xmin = std::min(xmin, x);
      xmax = std::max(xmax, x);
      ymin = std::min(ymin, y);
      ymax = std::max(ymax, y);
    }
  const bool empty = !(xmin <= xmax);
  std::ostringstream o;
  o << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << width << "\" height=\"" << height
    << "\" viewBox=\"0 0 " << width << ' ' << height << "\" font-family=\"sans-serif\">\n";
  o << "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  o << "<text x=\"" << width / 2 << "\" y=\"26\" text-anchor=\"middle\" font-size=\"16\">"
    << escape(chart.title) << "</text>\n";
  if (empty) {
    o << "<text x=\"" << fmt(left + pw / 2) << "\" y=\"" << fmt(top + ph / 2)
      << "\" text-anchor=\"middle\" font-size=\"14\">no data</text>\n</svg>\n";
    return o.str();
  }
  // Axis ranges: x from 0 (non-negative data) to just past the largest x, ticked at the data's
  // x values when there are few (segment lengths), else at rounded steps; y from 0 (linear) or
  // whole decades (log).
  std::vector<double> xt;
  for (const Series& s : chart.series)
    for (const auto& [x, y] : s.points)
      if (std::isfinite(x) && std::find(xt.begin(), xt.end(), x) == xt.end()) xt.push_back(x);
  std::sort(xt.begin(), xt.end());
  if (xmin >= 0) xmin = 0;
  xmax = xmax > xmin ? xmax + 0.05 * (xmax - xmin) : xmin + 1;
  if (xt.size() > 10) xt = linear_ticks(xmin, xmax, 6);
  std::vector<double> yt;
  if (chart.log_y) {
    const double lo = std::floor(std::log10(ymin)), hi = std::ceil(std::log10(ymax));
    ymin = std::pow(10.0, lo);
    ymax = std::pow(10.0, std::max(hi, lo + 1));
    for (double e = lo; e <= std::log10(ymax) + 1e-9; e += 1) yt.push_back(std::pow(10.0, e));
  } else {
    ymin = std::min(0.0, ymin);
    yt = linear_ticks(ymin, ymax * 1.02, 6);
    ymax = yt.back();
  }
  auto px = [&](double x) { return left + (x - xmin) / (xmax - xmin) * pw; };
  auto py = [&](double y) {
    const double f = chart.log_y ? (std::log10(y) - std::log10(ymin)) / (std::log10(ymax) - std::log10(ymin))
                                 : (y - ymin) / (ymax - ymin);
    return top + ph - f * ph;
  };
  // Grid, ticks and labels.
  for (double y : yt) {
    o << "<line x1=\"" << fmt(left) << "\" x2=\"" << fmt(left + pw) << "\" y1=\"" << fmt(py(y))
      << "\" y2=\"" << fmt(py(y)) << "\" stroke=\"#e0e0e0\"/>\n";
    o << "<text x=\"" << fmt(left - 8) << "\" y=\"" << fmt(py(y) + 4)
      << "\" text-anchor=\"end\" font-size=\"12\">" << tick_label(y) << "</text>\n";
  }
  for (double x : xt) {
    if (x < xmin - 1e-9 || x > xmax + 1e-9) continue;
    o << "<line x1=\"" << fmt(px(x)) << "\" x2=\"" << fmt(px(x)) << "\" y1=\"" << fmt(top)
      << "\" y2=\"" << fmt(top + ph) << "\" stroke=\"#f0f0f0\"/>\n";
    o << "<text x=\"" << fmt(px(x)) << "\" y=\"" << fmt(top + ph + 18)
      << "\" text-anchor=\"middle\" font-size=\"12\">" << tick_label(x) << "</text>\n";
  }
  o << "<rect x=\"" << fmt(left) << "\" y=\"" << fmt(top) << "\" width=\"" << fmt(pw)
    << "\" height=\"" << fmt(ph) << "\" fill=\"none\" stroke=\"#333\"/>\n";
  o << "<text x=\"" << fmt(left + pw / 2) << "\" y=\"" << height - 16
    << "\" text-anchor=\"middle\" font-size=\"13\">" << escape(chart.x_label) << "</text>\n";
  o << "<text transform=\"translate(22," << fmt(top + ph / 2)
    << ") rotate(-90)\" text-anchor=\"middle\" font-size=\"13\">" << escape(chart.y_label)
    << (chart.log_y ? " (log scale)" : "") << "</text>\n";
  // Series and legend.
  int legend_row = 0;
  for (const Series& s : chart.series) {
    std::vector<std::pair<double, double>> pts;
    for (const auto& [x, y] : s.points)
      if (std::isfinite(x) && std::isfinite(y) && (!chart.log_y || y > 0)) pts.emplace_back(x, y);
    if (pts.empty()) continue;
    const std::string dash = s.dashed ? " stroke-dasharray=\"6,4\"" : "";
    o << "<polyline fill=\"none\" stroke=\"" << s.color << "\" stroke-width=\"2\"" << dash
      << " points=\"";
    for (const auto& [x, y] : pts) o << fmt(px(x)) << ',' << fmt(py(y)) << ' ';
    o << "\"/>\n";
    for (const auto& [x, y] : pts)
      o << "<circle cx=\"" << fmt(px(x)) << "\" cy=\"" << fmt(py(y)) << "\" r=\"3.5\" fill=\""
        << s.color << "\"><title>" << escape(s.name) << ": " << tick_label(x) << ", "
        << tick_label(y) << "</title></circle>\n";
    const double ly = top + 10 + 22 * legend_row++;
    o << "<line x1=\"" << fmt(left + pw + 14) << "\" x2=\"" << fmt(left + pw + 44) << "\" y1=\""
      << fmt(ly) << "\" y2=\"" << fmt(ly) << "\" stroke=\"" << s.color
      << "\" stroke-width=\"2\"" << dash << "/>\n";
    o << "<text x=\"" << fmt(left + pw + 50) << "\" y=\"" << fmt(ly + 4) << "\" font-size=\"12\">"
      << escape(s.name) << "</text>\n";
  }
  o << "</svg>\n";
  return o.str();
}

}  // namespace crt::bench
