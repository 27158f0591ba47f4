// Metric primitives and a registry that renders them in the Prometheus text exposition format
// (version 0.0.4). No third-party client library: Debian 12 ships no prometheus-cpp, and the
// part agentd needs is small.
//
// Hot path: Counter::Inc, Gauge::Set/Add and Histogram::Observe are lock-free (relaxed atomics;
// a histogram has fixed buckets chosen at registration) and never allocate. A labelled child is
// created once, under its family's mutex, and its pointer stays valid for the registry's life:
// callers look children up once and keep the pointer (see agentd_metrics.h).
// Scrapes (Registry::Render) read the atomics without stopping writers, so a histogram's
// buckets, sum and count may be a few observations apart, as in every Prometheus client.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace agentd::metrics {

/// A monotonically increasing integer.
class Counter {
 public:
  void Inc(uint64_t n = 1) { value_.fetch_add(n, std::memory_order_relaxed); }
  uint64_t Value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> value_{0};
};

/// A monotonically increasing real number (e.g. USD spent).
class FloatCounter {
 public:
  void Add(double v);
  double Value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

/// A value that goes up and down.
class Gauge {
 public:
  void Set(double v) { value_.store(v, std::memory_order_relaxed); }
  void Add(double v);
  double Value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

/// A distribution over fixed buckets (upper bounds, ascending; +Inf is implicit).
class Histogram {
 public:
  /// `bounds` must outlive the histogram (the family owns it).
  explicit Histogram(const std::vector<double>* bounds);
  void Observe(double v);

  struct Snapshot {
    std::vector<uint64_t> cumulative;  // one per bound, then +Inf (== count)
    double sum = 0;
  };
  Snapshot Read() const;
  uint64_t Count() const;
  /// The i-th upper bound (i < bounds().size()).
  double Bound(size_t i) const { return (*bounds_)[i]; }
  const std::vector<double>& bounds() const { return *bounds_; }

 private:
  const std::vector<double>* bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> buckets_;  // bounds_->size() + 1, not cumulative
  std::atomic<double> sum_{0};
};

enum class MetricType { kCounter, kGauge, kHistogram };

/// One family: a name, its help text, its label names and the children by label values.
template <typename T>
class Family {
 public:
  Family(std::vector<std::string> label_names, std::vector<double> bounds = {})
      : label_names_(std::move(label_names)), bounds_(std::move(bounds)) {}

  /// The child with these label values (one per label name), created on first use. The pointer
  /// is stable; look it up once per (model, code, ...) and keep it. Thread-safe.
  T* WithLabels(const std::vector<std::string>& values) {
    absl::MutexLock lock(&mu_);
    auto& slot = children_[values];
    if (slot == nullptr) slot = New();
    return slot.get();
  }
  /// The child of a family without labels.
  T* Get() { return WithLabels({}); }

  const std::vector<std::string>& label_names() const { return label_names_; }
  /// Calls `fn(values, child)` for every child, in label-value order. Thread-safe.
  void ForEach(const std::function<void(const std::vector<std::string>&, const T&)>& fn) const {
    absl::MutexLock lock(&mu_);
    for (const auto& [values, child] : children_) fn(values, *child);
  }

 private:
  std::unique_ptr<T> New();

  const std::vector<std::string> label_names_;
  const std::vector<double> bounds_;  // histograms only
  mutable absl::Mutex mu_;
  std::map<std::vector<std::string>, std::unique_ptr<T>> children_ ABSL_GUARDED_BY(mu_);
};

template <typename T>
std::unique_ptr<T> Family<T>::New() {
  return std::make_unique<T>();
}
template <>
inline std::unique_ptr<Histogram> Family<Histogram>::New() {
  return std::make_unique<Histogram>(&bounds_);
}

using CounterFamily = Family<Counter>;
using FloatCounterFamily = Family<FloatCounter>;
using GaugeFamily = Family<Gauge>;
using HistogramFamily = Family<Histogram>;

/// Receives the samples of a callback family at scrape time.
class SampleSink {
 public:
  virtual ~SampleSink() = default;
  /// One sample; `values` has one entry per label name of the family.
  virtual void Add(const std::vector<std::string>& values, double value) = 0;
};

/// Owns every family. Register families before serving; Render from any thread.
class Registry {
 public:
  Registry();
  ~Registry();
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  // The returned families live as long as the registry. Names and label names must be valid
  // Prometheus identifiers and unique (programmer errors: checked with assert).
  CounterFamily* AddCounter(const std::string& name, const std::string& help,
                            std::vector<std::string> label_names = {});
  FloatCounterFamily* AddFloatCounter(const std::string& name, const std::string& help,
                                      std::vector<std::string> label_names = {});
  GaugeFamily* AddGauge(const std::string& name, const std::string& help,
                        std::vector<std::string> label_names = {});
  HistogramFamily* AddHistogram(const std::string& name, const std::string& help,
                                std::vector<std::string> label_names, std::vector<double> bounds);
  /// A family whose samples are computed at scrape time by `collect` (gauges read from other
  /// components, process statistics). `collect` runs on the scraping thread; it must be
  /// thread-safe and must not call back into the registry.
  void AddCallback(const std::string& name, const std::string& help, MetricType type,
                   std::vector<std::string> label_names,
                   std::function<void(SampleSink&)> collect);

  /// Every family in the text exposition format 0.0.4: `# HELP` and `# TYPE` once per family,
  /// in registration order, then its samples.
  std::string Render() const;

 private:
  struct Entry;
  Entry& Add(const std::string& name, const std::string& help, MetricType type);

  mutable absl::Mutex mu_;
  std::vector<std::unique_ptr<Entry>> entries_ ABSL_GUARDED_BY(mu_);
};

/// Escapes a label value for the exposition format (backslash, double quote, newline).
std::string EscapeLabelValue(const std::string& value);
/// Formats a sample value: integers without a fraction, +Inf / -Inf / NaN spelled out.
std::string FormatValue(double value);

}  // namespace agentd::metrics
