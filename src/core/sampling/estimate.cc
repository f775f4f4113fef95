#include "core/sampling/estimate.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace heapscope::core::sampling {

namespace {

constexpr double kZ = 1.959963984540054;  // the standard normal's 0.975 quantile
constexpr double kAlpha = 1.0 - kConfidenceLevel;

// log of the gamma density's normaliser terms, shared by P and the density.
double log_gamma_kernel(double a, double x) { return a * std::log(x) - x - std::lgamma(a); }

// The regularised lower incomplete gamma function P(a, x): a power series
// below a + 1, Lentz's continued fraction for 1 - P above (each converges
// fast on its side).
double lower_gamma_p(double a, double x) {
  if (x <= 0) return 0;
  if (x < a + 1) {
    double term = 1 / a, sum = term;
    for (int n = 1; n < 10000; ++n) {
      term *= x / (a + n);
      sum += term;
      if (std::fabs(term) < std::fabs(sum) * 1e-16) break;
    }
    return std::min(1.0, sum * std::exp(log_gamma_kernel(a, x)));
  }
  constexpr double tiny = 1e-300;
  double b = x + 1 - a, c = 1 / tiny, d = 1 / b, h = d;
  for (int i = 1; i < 10000; ++i) {
    const double an = -i * (i - a);
    b += 2;
    d = an * d + b;
    if (std::fabs(d) < tiny) d = tiny;
    c = b + an / c;
    if (std::fabs(c) < tiny) c = tiny;
    d = 1 / d;
    const double step = d * c;
    h *= step;
    if (std::fabs(step - 1) < 1e-16) break;
  }
  return std::max(0.0, 1 - std::exp(log_gamma_kernel(a, x)) * h);
}

// Wilson and Hilferty's cube-root normal approximation: accurate to a few
// parts in a million from shape 1000 on, and a good first guess below.
double wilson_hilferty(double a, double z) {
  const double k = 2 * a;  // chi-square degrees of freedom
  const double t = 1 - 2 / (9 * k) + z * std::sqrt(2 / (9 * k));
  return 0.5 * k * std::max(t, 0.0) * t * t;
}

}  // namespace

double gamma_quantile(double a, double q) noexcept {
  if (!(a > 0) || !(q > 0)) return 0;
  if (q >= 1) return std::numeric_limits<double>::infinity();
  const double z = q == 1 - kAlpha / 2 ? kZ : (q == kAlpha / 2 ? -kZ : 0);
  if (a >= 1000 && z != 0) return wilson_hilferty(a, z);
  // Bracketed Newton: the bracket [lo, hi] always holds the root, and a
  // Newton step that leaves it is replaced by bisection.
  double lo = 0, hi = std::max(1.0, a);
  while (lower_gamma_p(a, hi) < q) hi *= 2;
  double x = z != 0 ? std::clamp(wilson_hilferty(a, z), hi * 1e-12, hi) : 0.5 * hi;
  if (!(x > lo && x < hi)) x = 0.5 * (lo + hi);
  for (int i = 0; i < 200; ++i) {
    const double f = lower_gamma_p(a, x) - q;
    if (f < 0)
      lo = x;
    else
      hi = x;
    const double density = std::exp((a - 1) * std::log(x) - x - std::lgamma(a));
    double next = density > 0 ? x - f / density : 0.5 * (lo + hi);
    if (!(next > lo && next < hi)) next = 0.5 * (lo + hi);
    if (std::fabs(next - x) <= 1e-12 * x || hi - lo <= 1e-12 * hi) return next;
    x = next;
  }
  return x;
}

void Estimate::add_block(double x, double p) noexcept { add_blocks(x, p, 1); }

void Estimate::add_blocks(double x, double p, double n) noexcept {
  const double term = x / p;
  value += n * term;
  variance += n * (1 - p) * term * term;
  max_term = std::max(max_term, std::sqrt(1 - p) * term);
  max_weighted = std::max(max_weighted, term);
  observed += n * x;
}

void Estimate::add(const Estimate& other) noexcept {
  value += other.value;
  variance += other.variance;
  max_term = std::max(max_term, other.max_term);
  max_weighted = std::max(max_weighted, other.max_weighted);
  observed += other.observed;
}

Bounds confidence_interval(const Estimate& e, double continuity) noexcept {
  if (e.value <= 0) return {0, 0};
  // Gamma with the estimate's mean and variance for the lower bound (all
  // blocks certain: the value itself); for the upper, the same with one
  // more block (the continuity step that makes it exact for equal weights).
  double low = e.value;
  if (e.variance > 0) {
    const double lower_shape = e.value * e.value / e.variance;
    low = e.variance / e.value * gamma_quantile(lower_shape, kAlpha / 2);
  }
  const double w = continuity;
  const double up_mean = e.value + w, up_var = e.variance + w * w;
  const double high = up_var / up_mean * gamma_quantile(up_mean * up_mean / up_var, 1 - kAlpha / 2);
  low = std::max(low, e.observed);
  return {std::min(low, e.value), std::max(high, e.value)};
}

Bounds difference_interval(const Estimate& now, const Estimate& old, double continuity) noexcept {
  const double diff = now.value - old.value;
  const double half = kZ * std::sqrt(now.variance + old.variance) + continuity / 2;
  return {diff - half, diff + half};
}

}  // namespace heapscope::core::sampling
