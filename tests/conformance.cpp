// lmdecode-conformance: runs golden generate() cases (schema: tests/data/hf-reference/README.md)
// through our decoders and reports every mismatch.
//
//   lmdecode-conformance --cases FILE --models DIR [--dtype f64|f32|all] [--device cpu|cuda]
//                        [--weights f32|bf16|q8_0] [--expect-cases N]
//
// --weights bf16 keeps the float32 models' weight matrices in bfloat16 (WeightFormat::bfloat16),
// for the cases of bfloat16-stored checkpoints (cases-bf16.json).
//
// Tokens must match exactly; scores and log-probs within 1e-5*|ref| + 1e-6 (f64) or
// 1e-4*|ref| + 1e-5 (f32). Ends with "N passed, N failed" (cases); exits 0 only if none failed
// and, with --expect-cases, exactly N cases ran. A case whose "check" is empty or names an unknown
// dtype fails.

#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "support/golden_cases.hpp"

namespace {

constexpr const char* kUsage =
    "usage: lmdecode-conformance --cases FILE --models DIR [--dtype f64|f32|all] [--device cpu|cuda] "
    "[--weights f32|bf16|q8_0] [--expect-cases N]\n";

int usage(const std::string& why) {
  std::fprintf(stderr, "lmdecode-conformance: %s\n%s", why.c_str(), kUsage);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::string cases_path, models_dir, dtype_filter = "all", device_name = "cpu", weights_name = "f32";
  long expected_cases = -1;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--help") {
      std::fputs(kUsage, stdout);
      return 0;
    }
    if (i + 1 >= argc) return usage("missing value after " + arg);
    const std::string value = argv[++i];
    if (arg == "--cases") cases_path = value;
    else if (arg == "--models") models_dir = value;
    else if (arg == "--dtype") dtype_filter = value;
    else if (arg == "--device") device_name = value;
    else if (arg == "--weights") weights_name = value;
    else if (arg == "--expect-cases") expected_cases = std::strtol(value.c_str(), nullptr, 10);
    else return usage("unknown argument " + arg);
  }
  if (cases_path.empty() || models_dir.empty()) return usage("--cases and --models are required");
  if (dtype_filter != "f64" && dtype_filter != "f32" && dtype_filter != "all") return usage("--dtype must be f64, f32 or all");
  if (device_name != "cpu" && device_name != "cuda") return usage("--device must be cpu or cuda");
  const at::Device device = device_name == "cuda" ? at::Device(at::kCUDA) : at::Device(at::kCPU);
  const auto weights = lmdecode::parse_weight_format(weights_name);
  if (!weights) return usage("--weights must be f32, bf16 or q8_0");

  try {
    const auto all = lmdecode::detail::read_json_file(cases_path);
    lmdecode_test::GoldenModels models(models_dir, device, lmdecode::CacheLayout::shared_prompt, *weights);
    int passed = 0, failed = 0;
    const auto& cases = all.at("cases");
    for (size_t index = 0; index < cases.size(); ++index) {
      const auto& c = cases[index];
      bool ok = true, ran = false;
      std::vector<std::string> dtypes;
      try {
        dtypes = lmdecode_test::golden_checks(c);
      } catch (const std::invalid_argument& e) {
        fmt::print("FAIL case {}: {}\n", index, e.what());
        ++failed;
        continue;
      }
      for (const auto& dtype : dtypes) {
        if (dtype_filter != "all" && dtype != dtype_filter) continue;
        ran = true;
        auto& loaded = models.get(c.at("model"), dtype);
        const auto diff = lmdecode_test::check_golden_case(*loaded.model, loaded.defaults, c, dtype);
        if (!diff.empty()) {
          ok = false;
          fmt::print("FAIL case {} {} {} {} params {} prompts {}: {}\n", index, c.at("model").get<std::string>(),
                     c.at("kind").get<std::string>(), dtype, c.at("params").dump(), c.at("prompts").dump(), diff);
        }
      }
      if (ran) (ok ? passed : failed)++;
    }
    fmt::print("{} passed, {} failed\n", passed, failed);
    if (passed + failed == 0) {  // an empty or filtered-out file proves nothing
      fmt::print("no case ran: {} holds no case for --dtype {}\n", cases_path, dtype_filter);
      return 1;
    }
    if (expected_cases >= 0 && passed + failed != expected_cases) {
      fmt::print("expected {} cases to run, {} ran\n", expected_cases, passed + failed);
      return 1;
    }
    return failed == 0 ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "lmdecode-conformance: %s\n", e.what());
    return 2;
  }
}
