// lmdecode-generate, run as a person runs it: golden cases through its --json output, and the
// one-line errors of bad input; lmdecode-perplexity's windows.
#include <catch2/catch.hpp>

#include <sys/resource.h>

#include <algorithm>
#include <fstream>
#include <filesystem>
#include <map>
#include <regex>
#include <cstdio>
#include <string>
#include <thread>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "lmdecode/config.hpp"
#include "support/run_command.hpp"
#include "support/test_data.hpp"

using Catch::Matchers::Contains;

namespace {

lmdecode_test::CommandRun run_cli(const std::string& args) {
  return lmdecode_test::run_command(fmt::format("{} {}", LMDECODE_GENERATE_BIN, args));
}

/// The golden row without its prompt and without the padding after its end.
std::vector<int64_t> new_tokens(const std::vector<int64_t>& row, size_t prompt_length, const std::vector<int64_t>& eos) {
  std::vector<int64_t> out;
  for (size_t i = prompt_length; i < row.size(); ++i) {
    out.push_back(row[i]);
    if (std::find(eos.begin(), eos.end(), row[i]) != eos.end()) break;
  }
  return out;
}

/// lmdecode-generate's arguments for golden case `c` in float32: its model, prompts and params
/// (each param as its flag), then `extra`.
std::string case_arguments(const nlohmann::json& c, const std::string& extra) {
  std::string args = fmt::format("--model {} --dtype f32 {}", (lmdecode_test::reference_dir() / c["model"].get<std::string>()).string(), extra);
  for (const auto& prompt : c["prompts"]) args += fmt::format(" --prompt-ids {}", fmt::join(prompt.get<std::vector<int64_t>>(), ","));
  for (const auto& [key, value] : c["params"].items()) {
    std::string flag = key;
    std::replace(flag.begin(), flag.end(), '_', '-');
    args += fmt::format(" --{} {}", flag, value.is_string() ? value.get<std::string>() : value.dump());
  }
  return args;
}

/// A folder of qwen2-tiny's 320 rows beside the demo model's tokenizer of 4096 ids: a prompt, a text to
/// score, would hold ids the model has no row for; the programs that load both refuse it. One folder
/// per test (`program`): ctest runs the test entries side by side.
std::filesystem::path mismatched_tokenizer_folder(const std::string& program) {
  const auto folder = std::filesystem::temp_directory_path() / ("lmdecode_cli_mismatched_tokenizer_" + program);
  std::filesystem::create_directories(folder);
  for (const char* file : {"config.json", "model.safetensors", "generation_config.json"})
    std::filesystem::copy_file(lmdecode_test::reference_dir() / "qwen2-tiny" / file, folder / file,
                               std::filesystem::copy_options::overwrite_existing);
  std::filesystem::copy_file(lmdecode_test::reference_dir() / "fortunes-llama" / "tokenizer.json", folder / "tokenizer.json",
                             std::filesystem::copy_options::overwrite_existing);
  return folder;
}

constexpr const char* kMismatchedTokenizer = "the tokenizer has 4096 ids but the model only 320: they do not belong together";

}  // namespace

TEST_CASE("a huge max_new_tokens ends at EOS in memory that follows the tokens generated", "[cli][memory]") {
  // Before, the cache, mask and positions were sized for max_new_tokens: 10^9 grew to 22 GB and was
  // killed. Sanitizer builds reserve terabytes of address space and keep freed memory: no limit there.
#if defined(__SANITIZE_ADDRESS__)
  const std::string limit;
#else
  const std::string limit = "ulimit -v 3000000 && ";  // 3 GB of address space
#endif
  for (const char* beams : {"1", "4"}) {
    INFO("--num-beams " << beams);
    const auto run = lmdecode_test::run_command(fmt::format(
        "{}exec {} --model {} --prompt-ids 5,6,7 --max-new-tokens 1000000000 --num-beams {} --json", limit,
        LMDECODE_GENERATE_BIN, (lmdecode_test::reference_dir() / "qwen2-tiny").string(), beams));
    INFO(run.out);
    REQUIRE(run.status == 0);
    CHECK(nlohmann::json::parse(run.out).at("finish_reasons") == nlohmann::json::array({"eos"}));
#if !defined(__SANITIZE_ADDRESS__)
    rusage children{};
    getrusage(RUSAGE_CHILDREN, &children);
    CHECK(children.ru_maxrss < 400 * 1024);  // KiB: the largest child so far, this one or an earlier tiny run
#endif
  }
}

TEST_CASE("lmdecode-generate --json reproduces golden cases", "[cli][many-runs]") {
  const auto cases = nlohmann::json::parse(std::ifstream(lmdecode_test::reference_dir() / "cases.json"))["cases"];
  int checked = 0;
  for (const auto& c : cases) {
    const auto& p = c["params"];
    // One batched greedy case and the beam cases with every option the CLI maps, for both models.
    const bool wanted = (c["kind"] == "greedy" && c["prompts"].size() > 1) ||
                        (p.contains("early_stopping") && p["early_stopping"] == "never" && p.value("num_return_sequences", 1) == 2);
    if (!wanted) continue;
    const std::string args = case_arguments(c, "--json");
    size_t prompt_length = 0;
    for (const auto& prompt : c["prompts"]) prompt_length = std::max(prompt_length, prompt.size());
    INFO(args);
    auto r = run_cli(args);
    REQUIRE(r.status == 0);
    auto out = nlohmann::json::parse(r.out);
    const std::vector<int64_t> eos = c["model"] == "qwen2-tiny" ? std::vector<int64_t>{2, 3} : std::vector<int64_t>{2};
    const auto& expected = c["f32"]["sequences"];
    REQUIRE(out["sequences"].size() == expected.size());
    for (size_t i = 0; i < expected.size(); ++i)
      REQUIRE(out["sequences"][i].get<std::vector<int64_t>>() == new_tokens(expected[i].get<std::vector<int64_t>>(), prompt_length, eos));
    REQUIRE(out["timing"]["steps"].get<int64_t>() >= 1);
    REQUIRE(out["timing"]["threads"].get<int>() >= 1);
    ++checked;
  }
  REQUIRE(checked == 22);  // every selected case ran
}

TEST_CASE("lmdecode-generate --stream --json streams committed tokens, --output-scores adds transformers' scores", "[cli][streaming][many-runs]") {
  // The generated cases that keep transformers' token_scores: greedy and beam, with processors.
  const auto cases = nlohmann::json::parse(std::ifstream(lmdecode_test::reference_dir() / "cases-generated.json"))["cases"];
  int checked = 0;
  for (const auto& c : cases) {
    if (!c["f32"].contains("step_scores")) continue;
    const std::string args = case_arguments(c, "--json --stream --output-scores");
    INFO(args);
    auto r = run_cli(args);
    REQUIRE(r.status == 0);
    std::vector<nlohmann::json> lines;
    size_t start = 0;
    for (size_t end; (end = r.out.find('\n', start)) != std::string::npos; start = end + 1)
      lines.push_back(nlohmann::json::parse(r.out.substr(start, end - start)));
    REQUIRE(lines.size() >= 2);
    const auto& result = lines.back();
    const size_t prompts = c["prompts"].size(), per_prompt = result["sequences"].size() / prompts;
    std::vector<std::vector<int64_t>> streamed(prompts);
    for (size_t i = 0; i + 1 < lines.size(); ++i) {
      REQUIRE(lines[i]["step"].get<size_t>() == i);
      for (size_t p = 0; p < prompts; ++p)
        for (int64_t id : lines[i]["committed"][p].get<std::vector<int64_t>>()) streamed[p].push_back(id);
    }
    for (size_t p = 0; p < prompts; ++p)
      REQUIRE(streamed[p] == result["sequences"][p * per_prompt].get<std::vector<int64_t>>());
    const auto& expected = c["f32"]["token_scores"];
    REQUIRE(result["token_scores"].size() == expected.size());
    for (size_t row = 0; row < expected.size(); ++row) {
      REQUIRE(result["token_scores"][row].size() == expected[row].size());
      for (size_t j = 0; j < expected[row].size(); ++j)
        REQUIRE(result["token_scores"][row][j].get<double>() ==
                Approx(expected[row][j].get<double>()).epsilon(1e-4).margin(1e-5));
    }
    ++checked;
  }
  REQUIRE(checked == 4);  // greedy and beam on both original models
}

TEST_CASE("lmdecode-generate decodes speculatively from the text or a draft model: the same tokens, fewer forwards, streamed",
          "[cli][speculative]") {
  const auto model = (lmdecode_test::reference_dir() / "fortunes-llama").string();
  const std::string base = fmt::format("--model {} --prompt-ids 318,3424,289,259,2101,681,300 --max-new-tokens 48 --json", model);
  auto plain = run_cli(base);
  REQUIRE(plain.status == 0);
  const auto expected = nlohmann::json::parse(plain.out);
  CHECK_FALSE(expected.contains("speculation"));
  for (const std::string& flags : {std::string("--prompt-lookup-num-tokens 10"), "--assistant-model " + model + " --num-assistant-tokens 3"}) {
    INFO(flags);
    auto r = run_cli(base + " " + flags + " --stream");
    REQUIRE(r.status == 0);
    std::vector<nlohmann::json> lines;
    size_t start = 0;
    for (size_t end; (end = r.out.find('\n', start)) != std::string::npos; start = end + 1)
      lines.push_back(nlohmann::json::parse(r.out.substr(start, end - start)));
    const auto& result = lines.back();
    CHECK(result["sequences"] == expected["sequences"]);
    CHECK(result["finish_reasons"] == expected["finish_reasons"]);
    const auto& speculation = result.at("speculation");
    CHECK(speculation["target_forwards"].get<int64_t>() == result["timing"]["steps"].get<int64_t>());
    CHECK(speculation["target_forwards"].get<int64_t>() < expected["timing"]["steps"].get<int64_t>());
    CHECK(speculation["accepted"].get<int64_t>() > 0);
    CHECK((speculation["draft_forwards"].get<int64_t>() > 0) == (flags.find("assistant") != std::string::npos));
    // The streamed tokens add up to the result, several in a step.
    std::vector<int64_t> streamed;
    size_t most = 0;
    for (size_t i = 0; i + 1 < lines.size(); ++i) {
      const auto step = lines[i]["committed"][0].get<std::vector<int64_t>>();
      streamed.insert(streamed.end(), step.begin(), step.end());
      most = std::max(most, step.size());
    }
    CHECK(streamed == result["sequences"][0].get<std::vector<int64_t>>());
    CHECK(most > 1);
  }
  // The text line names the forwards and the drafts.
  auto text = run_cli(fmt::format("--model {} --prompt-ids 318,3424,289 --max-new-tokens 16 --prompt-lookup-num-tokens 4", model));
  REQUIRE(text.status == 0);
  CHECK_THAT(text.out, Contains("forwards of the model") && Contains("drafts accepted"));
  // Beam search takes no drafts; a draft model of another vocabulary is refused by name.
  auto beams = run_cli(base + " --num-beams 2 --prompt-lookup-num-tokens 4");
  CHECK(beams.status == 1);
  CHECK_THAT(beams.out, Contains("lmdecode:") && Contains("prompt_lookup_num_tokens") && Contains("beam search"));
  auto other = run_cli(base + " --assistant-model " + (lmdecode_test::reference_dir() / "qwen2-tiny").string());
  CHECK(other.status == 1);
  CHECK_THAT(other.out, Contains("lmdecode:") && Contains("the draft model's vocabulary has 320 tokens, the model's 4096"));
}

TEST_CASE("lmdecode-generate prints one clear line and fails on bad input", "[cli][errors]") {
  const auto model = (lmdecode_test::reference_dir() / "gpt2-tiny").string();
  auto fails = [](const std::string& args, const std::string& expected) {
    auto r = run_cli(args);
    INFO(args << "\n" << r.out);
    REQUIRE(r.status != 0);
    REQUIRE_THAT(r.out, Contains(expected));
    REQUIRE(std::count(r.out.begin(), r.out.end(), '\n') == 1);
  };
  fails("--model /nonexistent/folder --prompt-ids 1", "no model at /nonexistent/folder: no such file or folder");
  fails(fmt::format("--model {} --prompt-ids 1", lmdecode_test::reference_dir().string()), ": config.json missing");
  fails(fmt::format("--model {} --prompt-ids 1 --bogus", model), "--bogus");
  fails(fmt::format("--model {} --prompt-ids 1 --num-beams 0", model), "num_beams must be >= 1");
  fails(fmt::format("--model {} --prompt-ids 1,x", model), "--prompt-ids");
  fails(fmt::format("--model {} --prompt-ids 1 --top-p abc", model), "--top-p expects a number, got \"abc\"");
  fails(fmt::format("--model {} --prompt-ids 1 --num-beams 2.5", model), "--num-beams expects an integer, got \"2.5\"");
  fails(fmt::format("--model {} --prompt-ids 1 --num-beams 18446744073709551618", model), "--num-beams expects an integer in range");
  fails(fmt::format("--model {} --prompt-ids 1 --seed -1", model), "--seed expects a non-negative integer");
  fails(fmt::format("--model {} --prompt-ids 1 --early-stopping maybe", model), "--early-stopping");
  fails(fmt::format("--model {} --prompt-ids 1 --do-sample --temperature 0", model), "temperature");
  fails(fmt::format("--model {} --prompt-ids 999", model), "outside the vocabulary");
  fails(fmt::format("--model {}", model), "--prompt-ids");
  auto corrupt = std::filesystem::temp_directory_path() / "lmdecode_cli_corrupt";
  std::filesystem::create_directories(corrupt);
  std::filesystem::copy_file(lmdecode_test::reference_dir() / "gpt2-tiny" / "config.json", corrupt / "config.json",
                             std::filesystem::copy_options::overwrite_existing);
  std::ofstream(corrupt / "model.safetensors") << "garbage!";
  fails(fmt::format("--model {} --prompt-ids 1", corrupt.string()), "model.safetensors");
}

TEST_CASE("lmdecode-generate --help documents every flag", "[cli]") {
  auto r = run_cli("--help");
  REQUIRE(r.status == 0);
  for (const char* flag : {"--model", "--prompt-ids", "--max-new-tokens", "--min-new-tokens", "--num-beams", "--length-penalty",
                           "--early-stopping", "--num-return-sequences", "--repetition-penalty", "--no-repeat-ngram-size",
                           "--do-sample", "--temperature", "--top-k", "--top-p", "--seed", "--eos-token-ids",
                           "--pad-token-id", "--no-cache", "--dtype", "--device", "--json", "--stream", "--threads", "--patience", "--output-scores"})
    REQUIRE_THAT(r.out, Contains(flag));
  for (const auto& option : lmdecode::generation_options())  // one flag for every option of the table
    if (!option.flag_name().empty()) REQUIRE_THAT(r.out, Contains(option.flag_name() + " "));
}

TEST_CASE("lmdecode-generate --threads sets libtorch's threads and says so; the default is the machine's cores", "[cli]") {
  const auto model = (lmdecode_test::reference_dir() / "qwen2-tiny").string();
  auto r = run_cli(fmt::format("--model {} --prompt-ids 5,6,7 --max-new-tokens 2 --threads 1 --json", model));
  REQUIRE(r.status == 0);
  CHECK(nlohmann::json::parse(r.out).at("timing").at("threads") == 1);
  r = run_cli(fmt::format("--model {} --prompt-ids 5,6,7 --max-new-tokens 2 --json", model));
  REQUIRE(r.status == 0);
  CHECK(nlohmann::json::parse(r.out).at("timing").at("threads") == std::thread::hardware_concurrency());
  r = run_cli(fmt::format("--model {} --prompt-ids 5,6,7 --max-new-tokens 1 --threads 1", model));
  CHECK_THAT(r.out, Contains("(1 step, 1 thread)"));
  CHECK(run_cli(fmt::format("--model {} --prompt-ids 5 --threads 0", model)).status != 0);
  CHECK(run_cli(fmt::format("--model {} --prompt-ids 5 --threads 1000000", model)).status != 0);
}

TEST_CASE("lmdecode-generate reads prompts from files and stdin: the tokens of the same text given with --prompt",
          "[cli][prompts]") {
  const auto model = (lmdecode_test::reference_dir() / "fortunes-llama").string();
  const auto dir = std::filesystem::temp_directory_path() / "lmdecode_prompt_files";
  std::filesystem::create_directories(dir);
  const auto sequences = [&](const std::string& prompt_flags) {
    const auto r = lmdecode_test::run_command(
        fmt::format("({} --model {} --max-new-tokens 6 --json {} 2>/dev/null)", LMDECODE_GENERATE_BIN, model, prompt_flags));
    INFO(prompt_flags << "\n" << r.out);
    REQUIRE(r.status == 0);
    return nlohmann::json::parse(r.out).at("sequences");
  };
  const auto one = sequences("--prompt 'The cat sat on'");
  const auto two = sequences("--prompt 'The cat sat on' --prompt 'A dog'");
  std::ofstream(dir / "one.txt") << "The cat sat on\n";
  std::ofstream(dir / "lines.txt") << "The cat sat on\r\n\nA dog\n";
  std::ofstream(dir / "array.json") << R"(["The cat sat on", "A dog"])";
  CHECK(sequences("--prompt-file " + (dir / "one.txt").string()) == one);
  CHECK(sequences("--prompt-file " + (dir / "lines.txt").string() + " --prompt-lines") == two);
  CHECK(sequences("--prompt-file " + (dir / "array.json").string()) == two);
  CHECK(sequences("--prompt - < " + (dir / "one.txt").string()) == one);
  CHECK(sequences("--prompt - --prompt-lines < " + (dir / "lines.txt").string()) == two);

  const auto fails = [&](const std::string& prompt_flags, const std::string& expected) {
    const auto r = run_cli(fmt::format("--model {} {}", model, prompt_flags));
    INFO(prompt_flags << "\n" << r.out);
    CHECK(r.status != 0);
    CHECK_THAT(r.out, Contains(expected));
  };
  std::ofstream(dir / "huge.txt").close();
  std::filesystem::resize_file(dir / "huge.txt", (size_t{64} << 20) + 1);  // sparse: no disk written
  fails("--prompt-file " + (dir / "huge.txt").string(), "huge.txt is over 64 MiB");
  std::ofstream(dir / "numbers.json") << "[1, 2]";
  fails("--prompt-file " + (dir / "numbers.json").string(), "is a JSON array, but not of strings");
  fails("--prompt-file " + (dir / "missing.txt").string(), "missing.txt");
  fails("--prompt - --prompt-lines < /dev/null", "stdin (--prompt -) holds no prompt");
  const auto no_tokenizer = run_cli(fmt::format("--model {} --prompt hi", (lmdecode_test::reference_dir() / "qwen2-tiny").string()));
  CHECK_THAT(no_tokenizer.out, Contains("text prompts need a tokenizer: ") && Contains("qwen2-tiny/tokenizer.json is missing"));
  std::filesystem::remove_all(dir);
}

TEST_CASE("lmdecode-generate: results on stdout, the rest on stderr; a flag that does nothing is warned about",
          "[cli][output]") {
  const auto args = fmt::format("--model {} --prompt 'The cat' --max-new-tokens 1 --top-p 0.5 --length-penalty 2 --output-scores",
                                (lmdecode_test::reference_dir() / "fortunes-llama").string());
  // run_command joins stderr to stdout after the command: the parentheses split them first.
  const auto out = lmdecode_test::run_command(fmt::format("({} {} 2>/dev/null)", LMDECODE_GENERATE_BIN, args));
  const auto err = lmdecode_test::run_command(fmt::format("({} {} 2>&1 >/dev/null)", LMDECODE_GENERATE_BIN, args));
  INFO(out.out << "\n---\n" << err.out);
  REQUIRE(out.status == 0);
  CHECK_THAT(out.out, Contains("prompt 0: [") && Contains("  text: \"") && Contains("  scores: ["));
  CHECK_THAT(out.out, !Contains("timing") && !Contains("warning"));
  CHECK_THAT(err.out, Contains("timing: prompt ") && Contains("(1 step, "));
  CHECK_THAT(err.out, Contains("lmdecode-generate: warning: --top-p does nothing without --do-sample"));
  CHECK_THAT(err.out, Contains("lmdecode-generate: warning: --length-penalty does nothing with one beam"));
  CHECK_THAT(err.out, !Contains("prompt 0: ["));
  const auto no_length = run_cli(fmt::format("--model {} --prompt-ids 5,6", (lmdecode_test::reference_dir() / "qwen2-tiny").string()));
  CHECK_THAT(no_length.out, Contains("transformers' default"));  // qwen2-tiny's generation_config.json sets no length
}

TEST_CASE("the README lists every generation flag, as the option table and --help name them", "[cli]") {
  std::ifstream readme(LMDECODE_README);
  std::map<std::string, std::string> listed;  // flag -> GenerationConfig field, from the README's table
  const std::regex row(R"(^\| `(--[a-z0-9-]+)` \|[^`]*\| `([a-z_]+)` \|)");
  for (std::string line; std::getline(readme, line);)
    if (std::smatch m; std::regex_search(line, m, row)) listed[m[1]] = m[2];
  std::map<std::string, std::string> options;
  for (const auto& option : lmdecode::generation_options())
    if (!option.flag_name().empty()) options[option.flag_name()] = option.name;
  CHECK(listed == options);
  const auto help = run_cli("--help").out;
  for (const auto& [flag, field] : listed) CHECK_THAT(help, Contains("  " + flag + " "));
}

TEST_CASE("every program answers --help with its usage, and exits 0", "[cli][many-runs]") {
  std::string programs = LMDECODE_PROGRAM_BINS;
  for (size_t start = 0; start < programs.size();) {
    const size_t end = std::min(programs.find(':', start), programs.size());
    const std::string program = programs.substr(start, end - start);
    start = end + 1;
    const auto r = lmdecode_test::run_command(fmt::format("timeout 60 {} --help < /dev/null", program));
    INFO(program << "\n" << r.out);
    CHECK(r.status == 0);
    CHECK_THAT(r.out, Contains("sage"));  // "Usage:" (CLI11) or "usage:"
  }
}

TEST_CASE("lmdecode-perplexity scores the second half of each window, in every weight format", "[cli][many-runs]") {
  // English prose (the golden data's README) through the demo model, windows of 64 tokens: each
  // scores its last 31 tokens, as llama-perplexity does.
  const auto text = lmdecode_test::reference_dir() / "README.md";
  std::map<std::string, nlohmann::json> by_format;
  for (const std::string weights : {"f32", "bf16", "q8_0"}) {
    const auto run = lmdecode_test::run_command(fmt::format("{} --model {} --text {} --context 64 --weights {} --json",
                                                            LMDECODE_PERPLEXITY_BIN,
                                                            (lmdecode_test::reference_dir() / "fortunes-llama").string(),
                                                            text.string(), weights));
    INFO(run.out);
    REQUIRE(run.status == 0);
    const auto report = nlohmann::json::parse(run.out);
    CHECK(report["weights"] == weights);
    CHECK(report["windows"].get<int64_t>() >= 10);
    CHECK(report["tokens_scored"].get<int64_t>() == report["windows"].get<int64_t>() * 31);
    // A trained model on English: far below the uniform 4096.
    CHECK(report["perplexity"].get<double>() > 1);
    CHECK(report["perplexity"].get<double>() < 2000);
    by_format[weights] = report;
  }
  const double f32 = by_format["f32"]["mean_nll_nats"].get<double>();
  for (const char* narrow : {"bf16", "q8_0"}) {
    INFO(narrow);
    CHECK(std::abs(by_format[narrow]["mean_nll_nats"].get<double>() - f32) < 0.005 * f32);
  }
  const auto short_text = lmdecode_test::run_command(fmt::format("{} --model {} --text {} --context 65536",
                                                                 LMDECODE_PERPLEXITY_BIN,
                                                                 (lmdecode_test::reference_dir() / "fortunes-llama").string(),
                                                                 text.string()));
  CHECK(short_text.status != 0);
  CHECK_THAT(short_text.out, Contains("fewer than one window of 65536"));
  const auto mismatched = lmdecode_test::run_command(fmt::format("{} --model {} --text {} --context 8", LMDECODE_PERPLEXITY_BIN,
                                                                 mismatched_tokenizer_folder("perplexity").string(), text.string()));
  CHECK(mismatched.status != 0);
  CHECK_THAT(mismatched.out, Contains(kMismatchedTokenizer));
}

TEST_CASE("lmdecode-generate refuses a tokenizer with more ids than the model has rows", "[cli][errors]") {
  const auto generate = run_cli(fmt::format("--model {} --prompt hello --max-new-tokens 2", mismatched_tokenizer_folder("generate").string()));
  CHECK(generate.status != 0);
  CHECK_THAT(generate.out, Contains(kMismatchedTokenizer));
}

TEST_CASE("lmdecode-generate writes what --grammar, --json-schema and --json-object ask for", "[cli][grammar]") {
  const auto model = (lmdecode_test::reference_dir() / "fortunes-llama").string();
  const auto dir = std::filesystem::temp_directory_path() / "lmdecode_cli_grammar";
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "answer.gbnf") << "root ::= (\"yes\" | \"no\") \", because \" [a-z ]{1,20} \".\"\n";
  std::ofstream(dir / "person.json") << R"({"type": "object", "properties": {"name": {"type": "string", "maxLength": 8},
    "age": {"type": "integer", "minimum": 0, "maximum": 99}}, "required": ["name", "age"]})";
  std::ofstream(dir / "bad.gbnf") << "root ::= \"a\"\nitem ::= [b-\n";
  const std::string base = fmt::format("--model {} --prompt \"Q: is it so?\" --max-new-tokens 120 --json", model);
  auto text_of = [&](const std::string& flags) {
    INFO(flags);
    const auto r = run_cli(base + " " + flags);
    INFO(r.out);
    REQUIRE(r.status == 0);
    const auto out = nlohmann::json::parse(r.out);
    CHECK(out["finish_reasons"][0] == "eos");
    auto text = out["texts"][0].get<std::string>();  // the EOS token's text last
    const std::string eos = "<|endoftext|>";
    REQUIRE(text.size() >= eos.size());
    CHECK(text.substr(text.size() - eos.size()) == eos);
    return text.substr(0, text.size() - eos.size());
  };
  const auto answer = text_of("--grammar " + (dir / "answer.gbnf").string());
  CHECK(std::regex_match(answer, std::regex("(yes|no), because [a-z ]{1,20}\\.")));
  for (const std::string strategy : {"", "--num-beams 3", "--do-sample --seed 5 --top-k 0"}) {
    const auto person = nlohmann::json::parse(text_of("--json-schema " + (dir / "person.json").string() + " " + strategy));
    CHECK(person.size() == 2);
    CHECK(person["name"].get<std::string>().size() <= 8);
    CHECK(person["age"].get<int64_t>() <= 99);
  }
  CHECK(nlohmann::json::parse(text_of("--json-object")).is_object());

  auto fails = [&](const std::string& flags, const std::string& message) {
    INFO(flags);
    const auto r = run_cli(base + " " + flags);
    CHECK(r.status != 0);
    CHECK_THAT(r.out, Contains(message));
  };
  fails("--grammar " + (dir / "bad.gbnf").string(), (dir / "bad.gbnf").string() + ": grammar: line 2, column 10: a character class that is not closed");
  fails("--grammar " + (dir / "none.gbnf").string(), "cannot open the grammar");
  fails("--json-object --grammar " + (dir / "answer.gbnf").string(), "give one of --grammar, --json-schema and --json-object");
  fails("--json-schema " + (dir / "answer.gbnf").string(), "answer.gbnf is not valid JSON");
}
