// Tests of the datasets layer: SHA-256 vectors, corpus token counts and vocabularies, the batched stream
// layout, data-directory resolution, and the error messages for bad inputs. Linked with test_main.cpp.
#include <doctest/doctest.h>

#include "datasets/batch_stream.hpp"
#include "datasets/corpus.hpp"
#include "datasets/sha256.hpp"

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <random>
#include <set>
#include <span>
#include <string>
#include <vector>

namespace fs = std::filesystem;
using namespace std::string_literals;
using crt::data::DataError;

namespace {

// A fresh directory under the system temp directory, removed on destruction.
class TempDir {
public:
    TempDir() {
        std::random_device entropy;
        path_ = fs::temp_directory_path() / ("crt_datasets_test_" + std::to_string(entropy()) + "_" +
                                             std::to_string(counter_++));
        fs::create_directories(path_);
    }
    ~TempDir() {
        std::error_code ignored;
        fs::remove_all(path_, ignored);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    const fs::path& path() const { return path_; }

private:
    static inline int counter_ = 0;
    fs::path path_;
};

void write_file(const fs::path& path, const std::string& content) {
    fs::create_directories(path.parent_path());
    std::ofstream out(path, std::ios::binary);
    out << content;
    REQUIRE(out.good());
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// Runs `action`, which must throw DataError, and returns the message.
template <class Action>
std::string data_error_message(Action&& action) {
    try {
        action();
    } catch (const DataError& error) {
        return error.what();
    }
    FAIL("expected a crt::data::DataError");
    return {};
}

fs::path data_dir() { return crt::data::resolve_data_dir(""); }

std::size_t distinct_count(const std::vector<std::int32_t>& ids) {
    return std::set<std::int32_t>(ids.begin(), ids.end()).size();
}

std::size_t count_of(const std::vector<std::int32_t>& ids, std::int32_t id) {
    return static_cast<std::size_t>(std::count(ids.begin(), ids.end(), id));
}

// A small word-level corpus in `root`/ptb with the standard file names.
void write_small_ptb(const fs::path& root, const std::string& train, const std::string& valid,
                     const std::string& test) {
    write_file(root / "ptb" / "ptb.train.txt", train);
    write_file(root / "ptb" / "ptb.valid.txt", valid);
    write_file(root / "ptb" / "ptb.test.txt", test);
}

// Restores an environment variable and the working directory when a test leaves.
class EnvironmentGuard {
public:
    EnvironmentGuard() : saved_cwd_(fs::current_path()) {
        if (const char* value = std::getenv("CRT_DATA_DIR")) saved_value_ = value;
    }
    ~EnvironmentGuard() {
        if (saved_value_) {
            setenv("CRT_DATA_DIR", saved_value_->c_str(), 1);
        } else {
            unsetenv("CRT_DATA_DIR");
        }
        fs::current_path(saved_cwd_);
    }
    EnvironmentGuard(const EnvironmentGuard&) = delete;
    EnvironmentGuard& operator=(const EnvironmentGuard&) = delete;

private:
    fs::path saved_cwd_;
    std::optional<std::string> saved_value_;
};

}  // namespace

// ------------------------------------------------------------------------------------------------
// SHA-256
// ------------------------------------------------------------------------------------------------

TEST_CASE("sha256: FIPS 180-4 / NIST test vectors") {
    using crt::data::sha256_hex;
    CHECK(sha256_hex("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    CHECK(sha256_hex("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    CHECK(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq") ==
          "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    CHECK(sha256_hex("abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrs"
                     "mnopqrstnopqrstu") == "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1");

    crt::data::Sha256 hasher;
    const std::string thousand_a(1000, 'a');
    for (int i = 0; i < 1000; ++i) hasher.update(thousand_a);
    CHECK(hasher.finish_hex() == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST_CASE("sha256: any chunking gives the one-shot digest, and finish() resets") {
    std::string message;
    for (int i = 0; i < 1000; ++i) message.push_back(static_cast<char>((i * 37 + 11) % 256));
    for (std::size_t length : {0u, 1u, 55u, 56u, 63u, 64u, 65u, 119u, 120u, 128u, 1000u}) {
        const std::string part = message.substr(0, length);
        const std::string expected = crt::data::sha256_hex(part);
        for (std::size_t chunk : {1u, 3u, 63u, 64u, 65u, 200u}) {
            crt::data::Sha256 hasher;
            for (std::size_t offset = 0; offset < part.size(); offset += chunk) {
                hasher.update(std::string_view(part).substr(offset, chunk));
            }
            CHECK(hasher.finish_hex() == expected);
        }
    }
    crt::data::Sha256 reused;
    reused.update("something else");
    (void)reused.finish();
    reused.update("abc");
    CHECK(reused.finish_hex() == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST_CASE("sha256: the corpus files match their SHA256SUMS") {
    const fs::path root = data_dir();
    int files_checked = 0;
    for (const char* folder : {"ptb", "wikitext-2", "tinyshakespeare"}) {
        const auto manifest = crt::data::read_sha256sums(root / folder / "SHA256SUMS");
        REQUIRE_FALSE(manifest.empty());
        for (const auto& entry : manifest) {  // not a structured binding: CAPTURE needs a capturable name
            const std::string& name = entry.first;
            CAPTURE(name);
            CHECK(crt::data::sha256_file_hex(root / folder / name) == entry.second);
            ++files_checked;
        }
    }
    CHECK(files_checked == 7);
    CHECK(contains(data_error_message([&] { crt::data::sha256_file_hex(root / "no-such-file"); }), "no-such-file"));
}

// ------------------------------------------------------------------------------------------------
// The three corpora
// ------------------------------------------------------------------------------------------------

TEST_CASE("corpus: Penn Treebank token counts and vocabulary") {
    const crt::data::Corpus corpus = crt::data::load_corpus("ptb", data_dir());
    CHECK(corpus.name == "ptb");
    CHECK(corpus.level == crt::data::TokenLevel::word);
    CHECK(corpus.train.size() == 929'589);
    CHECK(corpus.valid.size() == 73'760);
    CHECK(corpus.test.size() == 82'430);
    CHECK(corpus.vocab.size() == 10'000);
    // Distinct types per split and lines (one <eos> per line), as in ptb/README.md.
    CHECK(distinct_count(corpus.valid) == 6'022);
    CHECK(distinct_count(corpus.test) == 6'049);
    const std::int32_t eos = corpus.vocab.id_of("<eos>");
    CHECK(count_of(corpus.train, eos) == 42'068);
    CHECK(count_of(corpus.valid, eos) == 3'370);
    CHECK(count_of(corpus.test, eos) == 3'761);
    // First-seen order: the training file starts " aer banknote berlitz ...".
    CHECK(corpus.vocab.word_of(0) == "aer");
    CHECK(corpus.vocab.decode(std::span(corpus.train).first(3), " ") == "aer banknote berlitz");
    CHECK(corpus.vocab.contains("<unk>"));
}

TEST_CASE("corpus: WikiText-2 token counts and vocabulary") {
    const crt::data::Corpus corpus = crt::data::load_corpus("wikitext-2", data_dir());
    CHECK(corpus.name == "wikitext-2");
    CHECK(corpus.train.size() == 2'088'628);
    CHECK(corpus.valid.size() == 217'646);
    CHECK(corpus.test.size() == 245'569);
    CHECK(corpus.vocab.size() == 33'278);
    CHECK(distinct_count(corpus.valid) == 13'777);
    CHECK(distinct_count(corpus.test) == 14'143);
    const std::int32_t eos = corpus.vocab.id_of("<eos>");
    CHECK(count_of(corpus.train, eos) == 36'718);  // one per line, empty lines included
    CHECK(count_of(corpus.valid, eos) == 3'760);
    CHECK(count_of(corpus.test, eos) == 4'358);
    // First-seen order matches the published type list: the file starts with an empty line.
    CHECK(corpus.vocab.word_of(0) == "<eos>");
    CHECK(corpus.vocab.word_of(1) == "=");
    CHECK(corpus.vocab.word_of(2) == "Valkyria");
}

TEST_CASE("corpus: Tiny Shakespeare characters and 90/5/5 split") {
    const crt::data::Corpus corpus = crt::data::load_corpus("tinyshakespeare", data_dir());
    CHECK(corpus.name == "tinyshakespeare");
    CHECK(corpus.level == crt::data::TokenLevel::character);
    CHECK(corpus.train.size() + corpus.valid.size() + corpus.test.size() == 1'115'394);
    CHECK(corpus.train.size() == 1'003'854);
    CHECK(corpus.valid.size() == 55'770);
    CHECK(corpus.test.size() == 55'770);
    CHECK(corpus.vocab.size() == 65);
    // Sorted byte order, as nanoGPT: '\n', ' ', '!', ...
    CHECK(corpus.vocab.word_of(0) == "\n");
    CHECK(corpus.vocab.word_of(1) == " ");
    CHECK(corpus.vocab.word_of(64) == "z");
    CHECK(corpus.vocab.decode(std::span(corpus.train).first(13), "") == "First Citizen");
}

TEST_CASE("corpus: checksum verification can be switched off") {
    TempDir temp;
    write_small_ptb(temp.path(), " a b \n", " a \n", " b \n");
    write_file(temp.path() / "ptb" / "SHA256SUMS",
               std::string(64, '0') + "  ptb.train.txt\n" + std::string(64, '0') + "  ptb.valid.txt\n" +
                   std::string(64, '0') + "  ptb.test.txt\n");
    CHECK_THROWS_AS(crt::data::load_corpus("ptb", temp.path()), DataError);
    const auto corpus = crt::data::load_corpus("ptb", temp.path(), {.verify_checksums = false});
    CHECK(corpus.train.size() == 3);
}

// ------------------------------------------------------------------------------------------------
// Vocabulary and tokenization
// ------------------------------------------------------------------------------------------------

TEST_CASE("vocabulary: dense ids in first-seen order; unknown lookups throw") {
    crt::data::Vocabulary vocab;
    CHECK(vocab.add("the") == 0);
    CHECK(vocab.add("cat") == 1);
    CHECK(vocab.add("the") == 0);
    CHECK(vocab.size() == 2);
    CHECK(vocab.id_of("cat") == 1);
    CHECK(vocab.word_of(0) == "the");
    CHECK_FALSE(vocab.find("dog").has_value());
    CHECK(contains(data_error_message([&] { (void)vocab.id_of("dog"); }), "unknown token 'dog'"));
    CHECK(contains(data_error_message([&] { (void)vocab.word_of(2); }), "token id 2"));
    CHECK(contains(data_error_message([&] { (void)vocab.word_of(-1); }), "token id -1"));
    const std::vector<std::int32_t> ids = {1, 0};
    CHECK(vocab.decode(ids, " ") == "cat the");
}

TEST_CASE("tokenize_words: <eos> after every line, blank lines included; CR and tabs are whitespace") {
    crt::data::Vocabulary vocab;
    using crt::data::UnknownTokenPolicy;
    const auto ids = crt::data::tokenize_words(" a b \n \n\tc\ta\r\nb", "mem", vocab, UnknownTokenPolicy::add_to_vocabulary);
    // Lines: "a b" <eos> | <eos> | "c a" <eos> | "b" <eos> (final line without '\n').
    CHECK(vocab.decode(ids, " ") == "a b <eos> <eos> c a <eos> b <eos>");
    CHECK(vocab.size() == 4);
    CHECK(crt::data::tokenize_words("", "mem", vocab, UnknownTokenPolicy::add_to_vocabulary).empty());
    CHECK(crt::data::tokenize_words("a\n", "mem", vocab, UnknownTokenPolicy::throw_error).size() == 2);
    CHECK(data_error_message([&] {
              crt::data::tokenize_words("a\nb zz\n", "mem", vocab, UnknownTokenPolicy::throw_error);
          }).starts_with("mem:2: unknown token 'zz'"));
}

// ------------------------------------------------------------------------------------------------
// BatchStream
// ------------------------------------------------------------------------------------------------

TEST_CASE("batch stream: Transformer-XL column layout and exact segments") {
    std::vector<std::int32_t> tokens(23);
    for (int i = 0; i < 23; ++i) tokens[static_cast<std::size_t>(i)] = i;
    // B = 3 -> L = 23 / 3 = 7 (tokens 21 and 22 dropped); columns 0..6, 7..13, 14..20.
    crt::data::BatchStream stream(tokens, 3);
    CHECK(stream.batch_size() == 3);
    CHECK(stream.column_length() == 7);
    CHECK(stream.num_segments(4) == 2);  // 6 steps per column: 4 + 2
    CHECK(stream.num_segments(6) == 1);
    CHECK(stream.num_segments(1) == 6);
    CHECK_FALSE(stream.done());

    const crt::data::Segment first = stream.next(4);
    CHECK(first.batch == 3);
    CHECK(first.len == 4);
    CHECK(first.inputs == std::vector<std::int32_t>{0, 1, 2, 3, 7, 8, 9, 10, 14, 15, 16, 17});
    CHECK(first.targets == std::vector<std::int32_t>{1, 2, 3, 4, 8, 9, 10, 11, 15, 16, 17, 18});
    CHECK(stream.position() == 4);
    CHECK_FALSE(stream.done());

    const crt::data::Segment second = stream.next(4);  // shorter last segment
    CHECK(second.batch == 3);
    CHECK(second.len == 2);
    CHECK(second.inputs == std::vector<std::int32_t>{4, 5, 11, 12, 18, 19});
    CHECK(second.targets == std::vector<std::int32_t>{5, 6, 12, 13, 19, 20});
    CHECK(stream.done());
    CHECK_THROWS_AS(stream.next(4), std::logic_error);

    stream.reset();
    CHECK_FALSE(stream.done());
    crt::data::Segment reused;
    stream.next_into(6, reused);
    CHECK(reused.len == 6);
    CHECK(reused.inputs == std::vector<std::int32_t>{0, 1, 2, 3, 4, 5, 7, 8, 9, 10, 11, 12, 14, 15, 16, 17, 18, 19});
    CHECK(reused.targets == std::vector<std::int32_t>{1, 2, 3, 4, 5, 6, 8, 9, 10, 11, 12, 13, 15, 16, 17, 18, 19, 20});
    CHECK(stream.done());
}

TEST_CASE("batch stream: every (input, target) pair of every column is served exactly once") {
    std::vector<std::int32_t> tokens(1000);
    for (std::size_t i = 0; i < tokens.size(); ++i) tokens[i] = static_cast<std::int32_t>(i);
    crt::data::BatchStream stream(tokens, 7);  // L = 142
    const std::size_t length = stream.column_length();
    CHECK(length == 142);
    std::size_t segments = 0, steps = 0;
    while (!stream.done()) {
        const auto segment = stream.next(10);
        for (int b = 0; b < segment.batch; ++b) {
            for (int t = 0; t < segment.len; ++t) {
                const std::size_t at = static_cast<std::size_t>(b * segment.len + t);
                CHECK(segment.inputs[at] == static_cast<std::int32_t>(static_cast<std::size_t>(b) * length + steps +
                                                                      static_cast<std::size_t>(t)));
                CHECK(segment.targets[at] == segment.inputs[at] + 1);
            }
        }
        steps += static_cast<std::size_t>(segment.len);
        ++segments;
    }
    CHECK(steps == length - 1);
    CHECK(segments == stream.num_segments(10));
}

TEST_CASE("batch stream: invalid arguments") {
    CHECK_THROWS_AS(crt::data::BatchStream(std::vector<std::int32_t>(10), 0), std::invalid_argument);
    CHECK(contains(data_error_message([] { crt::data::BatchStream(std::vector<std::int32_t>(5), 3); }),
                   "5 tokens are too few for batch size 3"));
    crt::data::BatchStream stream(std::vector<std::int32_t>(6), 3);  // L = 2: a single step
    CHECK_THROWS_AS(stream.next(0), std::invalid_argument);
    CHECK_THROWS_AS((void)stream.num_segments(-1), std::invalid_argument);
    CHECK(stream.num_segments(5) == 1);
    CHECK(stream.next(5).len == 1);
    CHECK(stream.done());
}

// ------------------------------------------------------------------------------------------------
// Error messages
// ------------------------------------------------------------------------------------------------

TEST_CASE("errors: missing file is named") {
    TempDir temp;
    write_file(temp.path() / "ptb" / "ptb.train.txt", " a b \n");
    write_file(temp.path() / "ptb" / "ptb.test.txt", " a b \n");
    const std::string message = data_error_message([&] { crt::data::load_corpus("ptb", temp.path()); });
    CHECK(contains(message, "missing file"));
    CHECK(contains(message, (temp.path() / "ptb" / "ptb.valid.txt").string()));

    const std::string no_folder = data_error_message([&] { crt::data::load_corpus("tinyshakespeare", temp.path()); });
    CHECK(contains(no_folder, (temp.path() / "tinyshakespeare" / "input.txt").string()));

    const std::string direct = data_error_message([&] { crt::data::read_file_bytes(temp.path() / "nope.txt"); });
    CHECK(contains(direct, (temp.path() / "nope.txt").string()));
}

TEST_CASE("errors: unknown token in valid names file, line and token") {
    TempDir temp;
    write_small_ptb(temp.path(), " a b c \n b c d \n", " a b \n c xyz d \n", " a \n");
    const std::string message = data_error_message([&] { crt::data::load_corpus("ptb", temp.path()); });
    const std::string valid_file = (temp.path() / "ptb" / "ptb.valid.txt").string();
    CHECK(contains(message, valid_file + ":2: unknown token 'xyz'"));
}

TEST_CASE("errors: empty split") {
    TempDir temp;
    write_small_ptb(temp.path(), " a b \n", " a \n", "");
    const std::string message = data_error_message([&] { crt::data::load_corpus("ptb", temp.path()); });
    CHECK(contains(message, (temp.path() / "ptb" / "ptb.test.txt").string()));
    CHECK(contains(message, "empty split"));

    write_small_ptb(temp.path(), " a b \n", " \n\n \n", " a \n");  // blank lines only: no words
    const std::string blank = data_error_message([&] { crt::data::load_corpus("ptb", temp.path()); });
    CHECK(contains(blank, (temp.path() / "ptb" / "ptb.valid.txt").string() + ": empty split"));

    write_file(temp.path() / "tinyshakespeare" / "input.txt", "abcdefghi");  // 9 bytes: train 8, valid 0
    const std::string characters = data_error_message([&] { crt::data::load_corpus("tinyshakespeare", temp.path()); });
    CHECK(contains(characters, (temp.path() / "tinyshakespeare" / "input.txt").string()));
    CHECK(contains(characters, "empty split 'valid'"));
}

TEST_CASE("errors: bad checksum names the file and both hashes") {
    TempDir temp;
    const std::string train = " a b \n", valid = " a \n", test = " b \n";
    write_small_ptb(temp.path(), train, valid, test);
    const std::string wrong_digest = crt::data::sha256_hex("not the training file");
    write_file(temp.path() / "ptb" / "SHA256SUMS", wrong_digest + "  ptb.train.txt\n" +
                                                       crt::data::sha256_hex(valid) + " *ptb.valid.txt\n" +
                                                       crt::data::sha256_hex(test) + "  ./ptb.test.txt\n");
    const std::string message = data_error_message([&] { crt::data::load_corpus("ptb", temp.path()); });
    CHECK(contains(message, (temp.path() / "ptb" / "ptb.train.txt").string()));
    CHECK(contains(message, "SHA-256 mismatch"));
    CHECK(contains(message, wrong_digest));
    CHECK(contains(message, crt::data::sha256_hex(train)));

    // With the right digest everything loads.
    write_file(temp.path() / "ptb" / "SHA256SUMS", crt::data::sha256_hex(train) + "  ptb.train.txt\n" +
                                                       crt::data::sha256_hex(valid) + " *ptb.valid.txt\n" +
                                                       crt::data::sha256_hex(test) + "  ./ptb.test.txt\n");
    CHECK(crt::data::load_corpus("ptb", temp.path()).train.size() == 3);

    // A manifest without an entry for a data file, and a malformed manifest line.
    write_file(temp.path() / "ptb" / "SHA256SUMS", crt::data::sha256_hex(train) + "  ptb.train.txt\n");
    CHECK(contains(data_error_message([&] { crt::data::load_corpus("ptb", temp.path()); }),
                   "no checksum entry for 'ptb.valid.txt'"));
    write_file(temp.path() / "ptb" / "SHA256SUMS", crt::data::sha256_hex(train) + "  ptb.train.txt\nnonsense\n");
    CHECK(contains(data_error_message([&] { crt::data::load_corpus("ptb", temp.path()); }),
                   (temp.path() / "ptb" / "SHA256SUMS").string() + ":2: malformed line"));

    // verify_against_sha256sums on a single file.
    write_file(temp.path() / "ptb" / "SHA256SUMS", crt::data::sha256_hex(train) + "  ptb.train.txt\n");
    CHECK_NOTHROW(crt::data::verify_against_sha256sums(temp.path() / "ptb" / "ptb.train.txt", train));
    CHECK(contains(data_error_message([&] {
                       crt::data::verify_against_sha256sums(temp.path() / "ptb" / "ptb.train.txt", "changed");
                   }),
                   "SHA-256 mismatch"));
}

TEST_CASE("errors: malformed lines (NUL byte, invalid UTF-8) name file and line") {
    TempDir temp;
    const std::string valid_file = (temp.path() / "ptb" / "ptb.valid.txt").string();
    write_small_ptb(temp.path(), " a b \n", " a \n b a\0b \n"s, " a \n");
    const std::string nul = data_error_message([&] { crt::data::load_corpus("ptb", temp.path()); });
    CHECK(contains(nul, valid_file + ":2: malformed line: NUL byte at column 5"));

    write_small_ptb(temp.path(), " a b \n", " a \n a \n b \xC3\x28 \n", " a \n");
    const std::string bad_utf8 = data_error_message([&] { crt::data::load_corpus("ptb", temp.path()); });
    CHECK(contains(bad_utf8, valid_file + ":3: malformed line: invalid UTF-8 sequence 0xC3 0x28 at column 4"));

    const std::string train_file = (temp.path() / "ptb" / "ptb.train.txt").string();
    write_small_ptb(temp.path(), " a \xFF b \n", " a \n", " a \n");
    CHECK(contains(data_error_message([&] { crt::data::load_corpus("ptb", temp.path()); }),
                   train_file + ":1: malformed line: invalid UTF-8 byte 0xFF at column 4"));

    // Valid multi-byte UTF-8 is fine; surrogates, overlong forms and truncated sequences are not.
    CHECK_NOTHROW(crt::data::check_well_formed_text("caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80\n", "mem"));
    CHECK(contains(data_error_message([] { crt::data::check_well_formed_text("x\xED\xA0\x80", "mem"); }), "mem:1:"));
    CHECK(contains(data_error_message([] { crt::data::check_well_formed_text("\xC0\xAF", "mem"); }), "mem:1:"));
    CHECK(contains(data_error_message([] { crt::data::check_well_formed_text("a\nb\xE2\x82", "mem"); }),
                   "mem:2: malformed line: truncated UTF-8 sequence"));

    write_file(temp.path() / "tinyshakespeare" / "input.txt", "line one\nline\0two\n"s + std::string(100, 'x'));
    CHECK(contains(data_error_message([&] { crt::data::load_corpus("tinyshakespeare", temp.path()); }),
                   (temp.path() / "tinyshakespeare" / "input.txt").string() + ":2: malformed line: NUL byte"));
}

TEST_CASE("errors: unknown corpus name lists the known ones") {
    const std::string message = data_error_message([] { crt::data::load_corpus("wikitext-103", "."); });
    CHECK(contains(message, "unknown corpus 'wikitext-103'"));
    for (const std::string& name : crt::data::corpus_names()) CHECK(contains(message, name));
    CHECK(crt::data::corpus_names().size() == 3);
}

// ------------------------------------------------------------------------------------------------
// Data directory resolution
// ------------------------------------------------------------------------------------------------

TEST_CASE("resolve_data_dir: flag, then $CRT_DATA_DIR, then ../shared/datasets, then the build default") {
    TempDir temp;
    EnvironmentGuard guard;  // declared after temp: restores the working directory before temp is removed
    unsetenv("CRT_DATA_DIR");

    // The tests run in the source root, so ../shared/datasets is found.
    const fs::path found = crt::data::resolve_data_dir("");
    CHECK(fs::is_directory(found / "ptb"));
    CHECK(found.is_absolute());

    // An explicit flag wins and must exist.
    CHECK(crt::data::resolve_data_dir(temp.path().string()) == temp.path().lexically_normal());
    const std::string missing = (temp.path() / "missing").string();
    CHECK(contains(data_error_message([&] { crt::data::resolve_data_dir(missing); }), missing));

    // Then the environment variable, which must exist too.
    setenv("CRT_DATA_DIR", temp.path().c_str(), 1);
    CHECK(crt::data::resolve_data_dir("") == temp.path().lexically_normal());
    setenv("CRT_DATA_DIR", missing.c_str(), 1);
    const std::string from_environment = data_error_message([] { crt::data::resolve_data_dir(""); });
    CHECK(contains(from_environment, missing));
    CHECK(contains(from_environment, "CRT_DATA_DIR"));
    unsetenv("CRT_DATA_DIR");

    // From a directory without ../shared/datasets the build-time default is used.
    fs::create_directories(temp.path() / "deep" / "cwd");
    fs::current_path(temp.path() / "deep" / "cwd");
    CHECK(fs::is_directory(crt::data::resolve_data_dir("") / "ptb"));
    // ... and ../shared/datasets relative to the working directory wins over it.
    fs::create_directories(temp.path() / "deep" / "shared" / "datasets");
    CHECK(crt::data::resolve_data_dir("") == (temp.path() / "deep" / "shared" / "datasets").lexically_normal());
}
