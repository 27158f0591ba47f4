#include "metrics/metrics.h"

#include <cassert>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "absl/strings/str_cat.h"

namespace agentd::metrics {
namespace {

void AtomicAdd(std::atomic<double>& target, double v) {
  double old = target.load(std::memory_order_relaxed);
  while (!target.compare_exchange_weak(old, old + v, std::memory_order_relaxed)) {
  }
}

bool ValidName(const std::string& name) {
  if (name.empty()) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
    if (!alpha && !(i > 0 && c >= '0' && c <= '9')) return false;
  }
  return true;
}

const char* TypeName(MetricType type) {
  switch (type) {
    case MetricType::kCounter:
      return "counter";
    case MetricType::kGauge:
      return "gauge";
    case MetricType::kHistogram:
      return "histogram";
  }
  return "untyped";
}

std::string EscapeHelp(const std::string& help) {
  std::string out;
  out.reserve(help.size());
  for (char c : help) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

// `{a="x",b="y"}` (empty when there are no labels); `extra` is appended last (histogram `le`).
std::string LabelText(const std::vector<std::string>& names, const std::vector<std::string>& values,
                      const std::string& extra_name = "", const std::string& extra_value = "") {
  if (names.empty() && extra_name.empty()) return "";
  std::string out = "{";
  for (size_t i = 0; i < names.size() && i < values.size(); ++i) {
    if (i > 0) out += ',';
    absl::StrAppend(&out, names[i], "=\"", EscapeLabelValue(values[i]), "\"");
  }
  if (!extra_name.empty()) {
    if (!names.empty()) out += ',';
    absl::StrAppend(&out, extra_name, "=\"", extra_value, "\"");
  }
  out += '}';
  return out;
}

class TextSink final : public SampleSink {
 public:
  TextSink(const std::string& name, const std::vector<std::string>& label_names, std::string* out)
      : name_(name), label_names_(label_names), out_(out) {}
  void Add(const std::vector<std::string>& values, double value) override {
    if (values.size() != label_names_.size()) return;  // programmer error: dropped, not garbled
    absl::StrAppend(out_, name_, LabelText(label_names_, values), " ", FormatValue(value), "\n");
  }

 private:
  const std::string& name_;
  const std::vector<std::string>& label_names_;
  std::string* out_;
};

}  // namespace

void FloatCounter::Add(double v) {
  if (v > 0) AtomicAdd(value_, v);
}

void Gauge::Add(double v) { AtomicAdd(value_, v); }

Histogram::Histogram(const std::vector<double>* bounds)
    : bounds_(bounds), buckets_(new std::atomic<uint64_t>[bounds->size() + 1]) {
  for (size_t i = 0; i <= bounds_->size(); ++i) buckets_[i].store(0, std::memory_order_relaxed);
}

void Histogram::Observe(double v) {
  // Linear scan: the bucket lists are short (≤ 20) and small values are the common case.
  size_t i = 0;
  const size_t n = bounds_->size();
  while (i < n && v > (*bounds_)[i]) ++i;
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  AtomicAdd(sum_, v);
}

Histogram::Snapshot Histogram::Read() const {
  Snapshot s;
  s.cumulative.resize(bounds_->size() + 1);
  uint64_t running = 0;
  for (size_t i = 0; i <= bounds_->size(); ++i) {
    running += buckets_[i].load(std::memory_order_relaxed);
    s.cumulative[i] = running;
  }
  s.sum = sum_.load(std::memory_order_relaxed);
  return s;
}

uint64_t Histogram::Count() const {
  uint64_t total = 0;
  for (size_t i = 0; i <= bounds_->size(); ++i) total += buckets_[i].load(std::memory_order_relaxed);
  return total;
}

struct Registry::Entry {
  std::string name;
  std::string help;
  MetricType type = MetricType::kCounter;
  std::unique_ptr<CounterFamily> counter;
  std::unique_ptr<FloatCounterFamily> float_counter;
  std::unique_ptr<GaugeFamily> gauge;
  std::unique_ptr<HistogramFamily> histogram;
  std::vector<std::string> callback_labels;
  std::function<void(SampleSink&)> callback;

  void Render(std::string* out) const;
};

void Registry::Entry::Render(std::string* out) const {
  absl::StrAppend(out, "# HELP ", name, " ", EscapeHelp(help), "\n# TYPE ", name, " ",
                  TypeName(type), "\n");
  if (counter) {
    counter->ForEach([&](const std::vector<std::string>& values, const Counter& c) {
      absl::StrAppend(out, name, LabelText(counter->label_names(), values), " ", c.Value(), "\n");
    });
  } else if (float_counter) {
    float_counter->ForEach([&](const std::vector<std::string>& values, const FloatCounter& c) {
      absl::StrAppend(out, name, LabelText(float_counter->label_names(), values), " ",
                      FormatValue(c.Value()), "\n");
    });
  } else if (gauge) {
    gauge->ForEach([&](const std::vector<std::string>& values, const Gauge& g) {
      absl::StrAppend(out, name, LabelText(gauge->label_names(), values), " ",
                      FormatValue(g.Value()), "\n");
    });
  } else if (histogram) {
    const std::vector<std::string>& names = histogram->label_names();
    histogram->ForEach([&](const std::vector<std::string>& values, const Histogram& h) {
      const Histogram::Snapshot s = h.Read();
      for (size_t i = 0; i < s.cumulative.size(); ++i) {
        const std::string le =
            i + 1 == s.cumulative.size() ? "+Inf" : FormatValue(h.Bound(i));
        absl::StrAppend(out, name, "_bucket", LabelText(names, values, "le", le), " ",
                        s.cumulative[i], "\n");
      }
      absl::StrAppend(out, name, "_sum", LabelText(names, values), " ", FormatValue(s.sum), "\n");
      absl::StrAppend(out, name, "_count", LabelText(names, values), " ", s.cumulative.back(),
                      "\n");
    });
  } else if (callback) {
    TextSink sink(name, callback_labels, out);
    callback(sink);
  }
}

Registry::Registry() = default;
Registry::~Registry() = default;

Registry::Entry& Registry::Add(const std::string& name, const std::string& help, MetricType type) {
  assert(ValidName(name));
  (void)ValidName;
  absl::MutexLock lock(&mu_);
  for ([[maybe_unused]] const auto& e : entries_) assert(e->name != name);
  auto& e = entries_.emplace_back(std::make_unique<Entry>());
  e->name = name;
  e->help = help;
  e->type = type;
  return *e;
}

CounterFamily* Registry::AddCounter(const std::string& name, const std::string& help,
                                    std::vector<std::string> label_names) {
  Entry& e = Add(name, help, MetricType::kCounter);
  e.counter = std::make_unique<CounterFamily>(std::move(label_names));
  return e.counter.get();
}

FloatCounterFamily* Registry::AddFloatCounter(const std::string& name, const std::string& help,
                                              std::vector<std::string> label_names) {
  Entry& e = Add(name, help, MetricType::kCounter);
  e.float_counter = std::make_unique<FloatCounterFamily>(std::move(label_names));
  return e.float_counter.get();
}

GaugeFamily* Registry::AddGauge(const std::string& name, const std::string& help,
                                std::vector<std::string> label_names) {
  Entry& e = Add(name, help, MetricType::kGauge);
  e.gauge = std::make_unique<GaugeFamily>(std::move(label_names));
  return e.gauge.get();
}

HistogramFamily* Registry::AddHistogram(const std::string& name, const std::string& help,
                                        std::vector<std::string> label_names,
                                        std::vector<double> bounds) {
  Entry& e = Add(name, help, MetricType::kHistogram);
  e.histogram = std::make_unique<HistogramFamily>(std::move(label_names), std::move(bounds));
  return e.histogram.get();
}

void Registry::AddCallback(const std::string& name, const std::string& help, MetricType type,
                           std::vector<std::string> label_names,
                           std::function<void(SampleSink&)> collect) {
  assert(type != MetricType::kHistogram);
  Entry& e = Add(name, help, type);
  e.callback_labels = std::move(label_names);
  e.callback = std::move(collect);
}

std::string Registry::Render() const {
  std::string out;
  absl::MutexLock lock(&mu_);
  for (const auto& e : entries_) e->Render(&out);
  return out;
}

std::string EscapeLabelValue(const std::string& value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string FormatValue(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  if (value == std::floor(value) && std::fabs(value) < 1e15) {
    return absl::StrCat(static_cast<int64_t>(value));
  }
  // Shortest of %.15g / %.17g that reads back exactly (0.1 stays "0.1").
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.15g", value);
  if (std::strtod(buf, nullptr) != value) std::snprintf(buf, sizeof(buf), "%.17g", value);
  return buf;
}

}  // namespace agentd::metrics
