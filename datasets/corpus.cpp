// Loading of the language-modelling corpora (PTB, WikiText-2, Tiny Shakespeare) into token-id vectors,
// with SHA256SUMS checks, well-formedness checks and error messages that name file, line and token.
#include "datasets/corpus.hpp"

#include "datasets/sha256.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <system_error>

#ifndef CRT_DEFAULT_DATA_DIR
#define CRT_DEFAULT_DATA_DIR ""
#endif

namespace crt::data {
namespace fs = std::filesystem;

// ---------------------------------------------------------------------------------------------
// Vocabulary
// ---------------------------------------------------------------------------------------------

std::int32_t Vocabulary::add(std::string_view word) {
    if (const auto found = ids_.find(word); found != ids_.end()) return found->second;
    if (words_.size() >= static_cast<std::size_t>(std::numeric_limits<std::int32_t>::max())) {
        throw DataError("vocabulary is full (more than 2^31-1 distinct tokens)");
    }
    const auto id = static_cast<std::int32_t>(words_.size());
    words_.emplace_back(word);
    ids_.emplace(words_.back(), id);
    return id;
}

std::optional<std::int32_t> Vocabulary::find(std::string_view word) const {
    if (const auto found = ids_.find(word); found != ids_.end()) return found->second;
    return std::nullopt;
}

std::int32_t Vocabulary::id_of(std::string_view word) const {
    if (const auto id = find(word)) return *id;
    throw DataError("unknown token '" + std::string(word) + "' (not in the vocabulary of " +
                    std::to_string(size()) + " tokens)");
}

const std::string& Vocabulary::word_of(std::int32_t id) const {
    if (id < 0 || static_cast<std::size_t>(id) >= words_.size()) {
        throw DataError("token id " + std::to_string(id) + " is out of range for a vocabulary of " +
                        std::to_string(size()) + " tokens");
    }
    return words_[static_cast<std::size_t>(id)];
}

std::string Vocabulary::decode(std::span<const std::int32_t> ids, std::string_view separator) const {
    std::string text;
    for (std::size_t i = 0; i < ids.size(); ++i) {
        if (i > 0) text += separator;
        text += word_of(ids[i]);
    }
    return text;
}

// ---------------------------------------------------------------------------------------------
// File reading and well-formedness
// ---------------------------------------------------------------------------------------------

namespace {

struct FileCloser {
    void operator()(std::FILE* file) const { std::fclose(file); }
};

// Built by appending: `"'" + std::string` trips a GCC 12 -Wrestrict false positive at -O3.
std::string quoted(const fs::path& path) {
    std::string text = path.string();
    text.insert(text.begin(), '\'');
    text.push_back('\'');
    return text;
}

// 1-based line number and column of byte `offset` in `text`.
std::pair<std::size_t, std::size_t> line_and_column(std::string_view text, std::size_t offset) {
    const std::string_view before = text.substr(0, offset);
    const std::size_t line = 1 + static_cast<std::size_t>(std::count(before.begin(), before.end(), '\n'));
    const std::size_t line_start = before.rfind('\n');
    const std::size_t column = (line_start == std::string_view::npos) ? offset + 1 : offset - line_start;
    return {line, column};
}

[[noreturn]] void throw_malformed(std::string_view text, const std::string& source_name, std::size_t offset,
                                  const std::string& what) {
    const auto [line, column] = line_and_column(text, offset);
    throw DataError(source_name + ":" + std::to_string(line) + ": malformed line: " + what + " at column " +
                    std::to_string(column));
}

std::string hex_byte(unsigned char byte) {
    static constexpr char hex_digits[] = "0123456789ABCDEF";
    return std::string("0x") + hex_digits[byte >> 4] + hex_digits[byte & 0x0f];
}

bool is_token_separator(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f'; }

}  // namespace

std::string read_file_bytes(const fs::path& file) {
    std::error_code status_error;
    if (fs::is_directory(file, status_error)) throw DataError("cannot read " + quoted(file) + ": it is a directory");
    // Only regular files: a FIFO would block and a device such as /dev/zero never ends.
    if (fs::exists(file, status_error) && !fs::is_regular_file(file, status_error))
        throw DataError("cannot read " + quoted(file) + ": not a regular file (a FIFO, device or socket)");
    errno = 0;
    std::unique_ptr<std::FILE, FileCloser> handle(std::fopen(file.string().c_str(), "rb"));
    if (!handle) {
        const int open_errno = errno;
        if (open_errno == ENOENT) throw DataError("missing file " + quoted(file) + ": no such file or directory");
        throw DataError("cannot open " + quoted(file) + ": " +
                        (open_errno != 0 ? std::strerror(open_errno) : "unknown error"));
    }
    std::string bytes;
    std::error_code size_error;
    const auto expected_size = fs::file_size(file, size_error);
    if (!size_error) bytes.reserve(static_cast<std::size_t>(expected_size));
    std::array<char, 1 << 16> chunk;
    while (true) {
        const std::size_t got = std::fread(chunk.data(), 1, chunk.size(), handle.get());
        bytes.append(chunk.data(), got);
        if (got < chunk.size()) {
            if (std::ferror(handle.get())) throw DataError("error while reading " + quoted(file));
            break;
        }
    }
    return bytes;
}

// A line is malformed if it contains a NUL byte or is not valid UTF-8 (RFC 3629: no overlong forms,
// no surrogates U+D800..U+DFFF, nothing above U+10FFFF, no truncated sequences). Other control
// characters are allowed; CR counts as whitespace, so CRLF files tokenize like LF files.
void check_well_formed_text(std::string_view text, const std::string& source_name) {
    const auto* bytes = reinterpret_cast<const unsigned char*>(text.data());
    const std::size_t size = text.size();
    std::size_t i = 0;
    while (i < size) {
        const unsigned char lead = bytes[i];
        if (lead >= 0x01 && lead < 0x80) {
            ++i;
            continue;
        }
        if (lead == 0x00) throw_malformed(text, source_name, i, "NUL byte");

        // Multi-byte sequence: the number of continuation bytes and the allowed range of the first one.
        std::size_t continuation_count = 0;
        unsigned char second_min = 0x80, second_max = 0xBF;
        if (lead >= 0xC2 && lead <= 0xDF) {
            continuation_count = 1;
        } else if (lead == 0xE0) {
            continuation_count = 2;
            second_min = 0xA0;
        } else if ((lead >= 0xE1 && lead <= 0xEC) || lead == 0xEE || lead == 0xEF) {
            continuation_count = 2;
        } else if (lead == 0xED) {
            continuation_count = 2;
            second_max = 0x9F;
        } else if (lead == 0xF0) {
            continuation_count = 3;
            second_min = 0x90;
        } else if (lead >= 0xF1 && lead <= 0xF3) {
            continuation_count = 3;
        } else if (lead == 0xF4) {
            continuation_count = 3;
            second_max = 0x8F;
        } else {
            throw_malformed(text, source_name, i, "invalid UTF-8 byte " + hex_byte(lead));
        }
        for (std::size_t k = 1; k <= continuation_count; ++k) {
            if (i + k >= size) throw_malformed(text, source_name, i, "truncated UTF-8 sequence");
            const unsigned char next = bytes[i + k];
            const unsigned char low = (k == 1) ? second_min : 0x80;
            const unsigned char high = (k == 1) ? second_max : 0xBF;
            if (next < low || next > high) {
                std::string sequence;
                for (std::size_t j = 0; j <= k; ++j) {
                    if (j > 0) sequence += ' ';
                    sequence += hex_byte(bytes[i + j]);
                }
                throw_malformed(text, source_name, i, "invalid UTF-8 sequence " + sequence);
            }
        }
        i += continuation_count + 1;
    }
}

// ---------------------------------------------------------------------------------------------
// Word-level tokenization
// ---------------------------------------------------------------------------------------------

// The PTB / WikiText convention (pytorch/examples word_language_model: `line.split() + ['<eos>']` for every
// line): tokens are split on ASCII whitespace and "<eos>" is appended to EVERY line, empty lines included.
// This reproduces the published counts: PTB 929,589 / 73,760 / 82,430 and WikiText-2 2,088,628 / 217,646 /
// 245,569 (skipping empty WikiText lines would give 2,075,677 / 216,347 / 244,102 instead). A line is the
// text up to each '\n'; a final line without '\n' still counts, and a trailing '\n' does not start a new one.
std::vector<std::int32_t> tokenize_words(std::string_view text, const std::string& source_name, Vocabulary& vocab,
                                         UnknownTokenPolicy policy) {
    std::vector<std::int32_t> ids;
    ids.reserve(text.size() / 6 + 16);

    auto lookup = [&](std::string_view token, std::size_t line_number) -> std::int32_t {
        if (policy == UnknownTokenPolicy::add_to_vocabulary) return vocab.add(token);
        if (const auto id = vocab.find(token)) return *id;
        throw DataError(source_name + ":" + std::to_string(line_number) + ": unknown token '" + std::string(token) +
                        "' (not in the training vocabulary of " + std::to_string(vocab.size()) + " tokens)");
    };

    std::optional<std::int32_t> eos_id;
    std::size_t line_number = 0;
    std::size_t line_start = 0;
    while (line_start < text.size()) {
        ++line_number;
        std::size_t line_end = text.find('\n', line_start);
        if (line_end == std::string_view::npos) line_end = text.size();

        std::size_t pos = line_start;
        while (pos < line_end) {
            while (pos < line_end && is_token_separator(text[pos])) ++pos;
            const std::size_t token_start = pos;
            while (pos < line_end && !is_token_separator(text[pos])) ++pos;
            if (pos > token_start) ids.push_back(lookup(text.substr(token_start, pos - token_start), line_number));
        }
        if (!eos_id) eos_id = lookup(end_of_sentence_token, line_number);
        ids.push_back(*eos_id);

        line_start = line_end + 1;
    }
    return ids;
}

namespace {

// Validates and tokenizes the already-read contents of a word-level split file.
std::vector<std::int32_t> tokenize_word_file_contents(std::string_view text, const fs::path& file,
                                                      Vocabulary& vocab, UnknownTokenPolicy policy) {
    const std::string source_name = file.string();
    check_well_formed_text(text, source_name);
    std::vector<std::int32_t> ids = tokenize_words(text, source_name, vocab, policy);
    // An "empty split" is a file with no words: no lines at all, or only blank lines (which give only <eos>).
    const auto eos_id = vocab.find(end_of_sentence_token);
    const bool has_word = std::any_of(ids.begin(), ids.end(), [&](std::int32_t id) { return id != eos_id; });
    if (!has_word) {
        throw DataError(source_name + ": empty split: the file has no tokens (" + std::to_string(ids.size()) +
                        " lines, none with a word)");
    }
    return ids;
}

// Character level: every byte is a token. The vocabulary is the set of distinct bytes of the WHOLE file in
// increasing byte order, as in nanoGPT/char-rnn (`sorted(set(text))`), so ids match theirs; for Tiny
// Shakespeare that is 65 symbols. Split: there is no official one; we take the first 90% of bytes for train
// (exactly nanoGPT's train split, floor(0.9 n)), the next 5% for valid and the last 5% for test
// (valid + test together are nanoGPT's validation split). For Tiny Shakespeare: 1,003,854 / 55,770 / 55,770.
Corpus tokenize_character_file_contents(std::string_view text, const fs::path& file) {
    const std::string source_name = file.string();
    check_well_formed_text(text, source_name);

    std::array<bool, 256> byte_seen{};
    for (char c : text) byte_seen[static_cast<unsigned char>(c)] = true;
    Corpus corpus;
    corpus.level = TokenLevel::character;
    std::array<std::int32_t, 256> id_of_byte{};
    for (int byte = 0; byte < 256; ++byte) {
        if (byte_seen[static_cast<std::size_t>(byte)]) {
            id_of_byte[static_cast<std::size_t>(byte)] = corpus.vocab.add(std::string(1, static_cast<char>(byte)));
        }
    }

    const std::uint64_t total = text.size();
    const auto train_end = static_cast<std::size_t>(total * 9 / 10);
    const auto valid_end = static_cast<std::size_t>(total * 19 / 20);
    auto encode_range = [&](std::size_t begin, std::size_t end, const char* split_name) {
        if (begin >= end) {
            throw DataError(source_name + ": empty split '" + split_name + "': the file has only " +
                            std::to_string(total) + " bytes, too few for a 90/5/5 train/valid/test split");
        }
        std::vector<std::int32_t> ids(end - begin);
        for (std::size_t i = begin; i < end; ++i) ids[i - begin] = id_of_byte[static_cast<unsigned char>(text[i])];
        return ids;
    };
    corpus.train = encode_range(0, train_end, "train");
    corpus.valid = encode_range(train_end, valid_end, "valid");
    corpus.test = encode_range(valid_end, text.size(), "test");
    return corpus;
}

}  // namespace

std::vector<std::int32_t> load_word_file(const fs::path& file, Vocabulary& vocab, UnknownTokenPolicy policy) {
    return tokenize_word_file_contents(read_file_bytes(file), file, vocab, policy);
}

Corpus load_word_level_corpus(const fs::path& train_file, const fs::path& valid_file, const fs::path& test_file) {
    Corpus corpus;
    corpus.level = TokenLevel::word;
    corpus.train = load_word_file(train_file, corpus.vocab, UnknownTokenPolicy::add_to_vocabulary);
    corpus.valid = load_word_file(valid_file, corpus.vocab, UnknownTokenPolicy::throw_error);
    corpus.test = load_word_file(test_file, corpus.vocab, UnknownTokenPolicy::throw_error);
    return corpus;
}

Corpus load_character_level_corpus(const fs::path& file) {
    return tokenize_character_file_contents(read_file_bytes(file), file);
}

// ---------------------------------------------------------------------------------------------
// SHA256SUMS
// ---------------------------------------------------------------------------------------------

std::unordered_map<std::string, std::string> read_sha256sums(const fs::path& manifest_file) {
    return parse_sha256sums(read_file_bytes(manifest_file), manifest_file.string());
}

std::unordered_map<std::string, std::string> parse_sha256sums(std::string_view text, const std::string& source_name) {
    std::unordered_map<std::string, std::string> digests;
    std::size_t line_number = 0;
    std::size_t line_start = 0;
    while (line_start < text.size()) {
        ++line_number;
        std::size_t line_end = text.find('\n', line_start);
        if (line_end == std::string::npos) line_end = text.size();
        std::string_view line(text.data() + line_start, line_end - line_start);
        line_start = line_end + 1;
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        if (line.empty() || line.front() == '#') continue;

        // "<64 hex digits><space><space or '*'><file name>", as written by `sha256sum` / `sha256sum -b`.
        constexpr std::size_t hex_length = 64;
        const bool hex_ok = line.size() > hex_length + 2 &&
                            std::all_of(line.begin(), line.begin() + hex_length,
                                        [](char c) { return std::isxdigit(static_cast<unsigned char>(c)) != 0; }) &&
                            line[hex_length] == ' ' && (line[hex_length + 1] == ' ' || line[hex_length + 1] == '*');
        if (!hex_ok) {
            throw DataError(source_name + ":" + std::to_string(line_number) +
                            ": malformed line: expected '<64 hex digits>  <file name>'");
        }
        std::string digest(line.substr(0, hex_length));
        std::transform(digest.begin(), digest.end(), digest.begin(),
                       [](char c) { return static_cast<char>(std::tolower(static_cast<unsigned char>(c))); });
        std::string_view name = line.substr(hex_length + 2);
        if (name.starts_with("./")) name.remove_prefix(2);
        digests[std::string(name)] = std::move(digest);
    }
    return digests;
}

namespace {

constexpr const char* manifest_file_name = "SHA256SUMS";

void verify_with_manifest(const fs::path& file, std::string_view file_bytes,
                          const std::unordered_map<std::string, std::string>& manifest, const fs::path& manifest_file) {
    const auto entry = manifest.find(file.filename().string());
    if (entry == manifest.end()) {
        throw DataError(file.string() + ": no checksum entry for '" + file.filename().string() + "' in " +
                        manifest_file.string());
    }
    const std::string actual = sha256_hex(file_bytes);
    if (actual != entry->second) {
        throw DataError(file.string() + ": SHA-256 mismatch: expected " + entry->second + " (from " +
                        manifest_file.string() + "), actual " + actual);
    }
}

}  // namespace

void verify_against_sha256sums(const fs::path& file, std::string_view file_bytes) {
    const fs::path manifest_file = file.parent_path() / manifest_file_name;
    std::error_code exists_error;
    if (!fs::exists(manifest_file, exists_error)) return;
    verify_with_manifest(file, file_bytes, read_sha256sums(manifest_file), manifest_file);
}

// ---------------------------------------------------------------------------------------------
// Named corpora
// ---------------------------------------------------------------------------------------------

namespace {

struct CorpusLayout {
    std::string_view name;
    std::string_view folder;
    TokenLevel level;
    std::array<std::string_view, 3> split_files;  // train, valid, test; character level uses only the first
};

constexpr std::array<CorpusLayout, 3> known_corpora = {{
    {"ptb", "ptb", TokenLevel::word, {"ptb.train.txt", "ptb.valid.txt", "ptb.test.txt"}},
    {"wikitext-2", "wikitext-2", TokenLevel::word, {"wiki.train.tokens", "wiki.valid.tokens", "wiki.test.tokens"}},
    {"tinyshakespeare", "tinyshakespeare", TokenLevel::character, {"input.txt", "", ""}},
}};

}  // namespace

const std::vector<std::string>& corpus_names() {
    static const std::vector<std::string> names = [] {
        std::vector<std::string> list;
        for (const CorpusLayout& layout : known_corpora) list.emplace_back(layout.name);
        return list;
    }();
    return names;
}

Corpus load_corpus(std::string_view name, const fs::path& data_dir, const LoadOptions& options) {
    const auto layout = std::find_if(known_corpora.begin(), known_corpora.end(),
                                     [&](const CorpusLayout& candidate) { return candidate.name == name; });
    if (layout == known_corpora.end()) {
        std::string expected;
        for (const std::string& known : corpus_names()) {
            if (!expected.empty()) expected += ", ";
            expected += known;
        }
        throw DataError("unknown corpus '" + std::string(name) + "' (expected one of: " + expected + ")");
    }

    const fs::path folder = data_dir / layout->folder;
    const fs::path manifest_file = folder / manifest_file_name;
    std::error_code exists_error;
    std::optional<std::unordered_map<std::string, std::string>> manifest;
    if (options.verify_checksums && fs::exists(manifest_file, exists_error)) manifest = read_sha256sums(manifest_file);

    // Reads one split file (each file is read once: hashed and tokenized from the same buffer).
    auto read_split_file = [&](std::string_view file_name) {
        const fs::path file = folder / file_name;
        std::error_code file_error;
        if (!fs::exists(file, file_error)) {
            throw DataError("missing file " + quoted(file) + " of corpus '" + std::string(name) +
                            "' (data directory " + quoted(data_dir) + ")");
        }
        std::string bytes = read_file_bytes(file);
        if (manifest) verify_with_manifest(file, bytes, *manifest, manifest_file);
        return std::pair{file, std::move(bytes)};
    };

    Corpus corpus;
    if (layout->level == TokenLevel::character) {
        const auto [file, bytes] = read_split_file(layout->split_files[0]);
        corpus = tokenize_character_file_contents(bytes, file);
    } else {
        corpus.level = TokenLevel::word;
        std::array<std::vector<std::int32_t>*, 3> destinations = {&corpus.train, &corpus.valid, &corpus.test};
        for (std::size_t split = 0; split < 3; ++split) {
            const auto [file, bytes] = read_split_file(layout->split_files[split]);
            const auto policy = (split == 0) ? UnknownTokenPolicy::add_to_vocabulary : UnknownTokenPolicy::throw_error;
            *destinations[split] = tokenize_word_file_contents(bytes, file, corpus.vocab, policy);
        }
    }
    corpus.name = std::string(layout->name);
    corpus.checksums_verified = manifest.has_value();
    return corpus;
}

// ---------------------------------------------------------------------------------------------
// Data directory resolution
// ---------------------------------------------------------------------------------------------

std::filesystem::path resolve_data_dir(const std::string& flag_value) {
    auto is_existing_directory = [](const fs::path& path) {
        std::error_code error;
        return fs::is_directory(path, error);
    };
    auto normalized = [](const fs::path& path) {
        std::error_code error;
        const fs::path absolute = fs::absolute(path, error);
        return (error ? path : absolute).lexically_normal();
    };

    // An explicit choice (flag or environment) is authoritative: if it does not exist we report it
    // instead of silently falling back to some other directory.
    if (!flag_value.empty()) {
        if (is_existing_directory(flag_value)) return normalized(flag_value);
        throw DataError("data directory '" + flag_value + "' (given on the command line) does not exist or is not a directory");
    }
    const char* environment_value = std::getenv("CRT_DATA_DIR");
    if (environment_value != nullptr && *environment_value != '\0') {
        if (is_existing_directory(environment_value)) return normalized(environment_value);
        throw DataError("data directory '" + std::string(environment_value) +
                        "' (from $CRT_DATA_DIR) does not exist or is not a directory");
    }

    std::vector<fs::path> candidates = {fs::path("..") / "shared" / "datasets"};
    if (const std::string_view build_default = CRT_DEFAULT_DATA_DIR; !build_default.empty()) {
        candidates.emplace_back(build_default);
    }
    std::string tried = "no command-line value, $CRT_DATA_DIR unset";
    for (const fs::path& candidate : candidates) {
        if (is_existing_directory(candidate)) return normalized(candidate);
        tried += ", " + quoted(normalized(candidate));
    }
    throw DataError("no data directory found (tried: " + tried +
                    "); pass the directory on the command line or set CRT_DATA_DIR");
}

}  // namespace crt::data
