// Language-modelling corpora for crt: the vocabulary, word-level (PTB / WikiText) and character-level
// (Tiny Shakespeare) loaders, SHA256SUMS verification and data-directory resolution.
// Every failure throws crt::data::DataError naming the file (and line and token where relevant).
#pragma once

#include "datasets/data_error.hpp"

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace crt::data {

// The token appended to every line of a word-level file.
inline constexpr std::string_view end_of_sentence_token = "<eos>";

// Bidirectional word <-> id map. Ids are dense, 0 .. size()-1, in the order words were first added.
class Vocabulary {
public:
    // Returns the id of `word`, adding it with the next free id if it is new.
    std::int32_t add(std::string_view word);

    // Lookups that throw DataError on an unknown word / out-of-range id.
    std::int32_t id_of(std::string_view word) const;
    const std::string& word_of(std::int32_t id) const;

    // Non-throwing lookup.
    std::optional<std::int32_t> find(std::string_view word) const;
    bool contains(std::string_view word) const { return find(word).has_value(); }

    std::size_t size() const { return words_.size(); }
    const std::vector<std::string>& words() const { return words_; }

    // Joins the words of `ids` with `separator` (" " for word-level corpora, "" for character-level).
    std::string decode(std::span<const std::int32_t> ids, std::string_view separator) const;

private:
    struct StringHash {
        using is_transparent = void;
        std::size_t operator()(std::string_view text) const noexcept { return std::hash<std::string_view>{}(text); }
    };
    std::vector<std::string> words_;
    std::unordered_map<std::string, std::int32_t, StringHash, std::equal_to<>> ids_;
};

enum class TokenLevel { word, character };

struct Corpus {
    std::string name;  // "ptb", "wikitext-2", "tinyshakespeare", or "" for corpora loaded from explicit paths
    TokenLevel level = TokenLevel::word;
    Vocabulary vocab;
    std::vector<std::int32_t> train, valid, test;
    // load_corpus: whether the files were checked against the folder's SHA256SUMS (false when
    // the folder has none, or checks were turned off).
    bool checksums_verified = false;
};

struct LoadOptions {
    // Check each data file against the SHA256SUMS file in its folder, when that file exists.
    bool verify_checksums = true;
};

// The names load_corpus accepts: "ptb", "wikitext-2", "tinyshakespeare".
const std::vector<std::string>& corpus_names();

// Loads a named corpus from `data_dir`/<folder>: ptb/ptb.{train,valid,test}.txt,
// wikitext-2/wiki.{train,valid,test}.tokens or tinyshakespeare/input.txt.
Corpus load_corpus(std::string_view name, const std::filesystem::path& data_dir, const LoadOptions& options = {});

// --- Building blocks, also usable on corpora with other file names. ---

enum class UnknownTokenPolicy {
    add_to_vocabulary,  // training split: grow the vocabulary
    throw_error,        // valid/test splits: an unseen token is an error naming file, line and token
};

// Tokenizes word-level text (one sentence or paragraph per line, tokens separated by ASCII whitespace,
// "<eos>" appended after every line, empty lines included). `source_name` is used in error messages.
std::vector<std::int32_t> tokenize_words(std::string_view text, const std::string& source_name, Vocabulary& vocab,
                                         UnknownTokenPolicy policy);

// Reads, checks (check_well_formed_text) and tokenizes a word-level file; throws DataError if the file is
// missing, malformed, has an unknown token (throw_error policy) or is an empty split (no words, only blank lines).
std::vector<std::int32_t> load_word_file(const std::filesystem::path& file, Vocabulary& vocab,
                                         UnknownTokenPolicy policy);

// A word-level corpus from three files; the vocabulary comes from the training file in first-seen order.
Corpus load_word_level_corpus(const std::filesystem::path& train_file, const std::filesystem::path& valid_file,
                              const std::filesystem::path& test_file);

// A character-level corpus from one file; see corpus.cpp for the vocabulary order and the split.
Corpus load_character_level_corpus(const std::filesystem::path& file);

// Checks that `text` is well-formed: valid UTF-8 and free of NUL bytes. Throws DataError
// "<source_name>:<line>: malformed line: ..." otherwise.
void check_well_formed_text(std::string_view text, const std::string& source_name);

// Reads a whole file into memory; throws DataError naming the file if it is missing or unreadable.
std::string read_file_bytes(const std::filesystem::path& file);

// Parses a `sha256sum` manifest ("<64 hex>  <name>" per line, optional '*' before the name for binary mode)
// into a map from file name to lower-case hex digest. Throws DataError naming the manifest and line.
std::unordered_map<std::string, std::string> read_sha256sums(const std::filesystem::path& manifest_file);
// The same on text in memory; `source_name` names it in errors.
std::unordered_map<std::string, std::string> parse_sha256sums(std::string_view text, const std::string& source_name);

// If `file`'s folder holds a SHA256SUMS, checks `file_bytes` (the contents of `file`) against its entry.
// Throws DataError naming the file and both hashes on mismatch, or if the manifest has no entry for the file.
void verify_against_sha256sums(const std::filesystem::path& file, std::string_view file_bytes);

// Picks the data directory: `flag_value` if non-empty, else $CRT_DATA_DIR if set and non-empty (an explicit
// choice that does not exist is an error, not silently skipped); otherwise the first existing one of
// ./../shared/datasets (relative to the working directory) and the build-time default CRT_DEFAULT_DATA_DIR.
// Throws DataError listing every path tried.
std::filesystem::path resolve_data_dir(const std::string& flag_value);

}  // namespace crt::data
