// Fuzz target: the word-level corpus tokenizer. Text that passes the well-formedness check
// tokenizes; tokenizing it again against the vocabulary it built (as a validation split is)
// gives the same ids, every id names a word of the vocabulary, and every line ends in <eos>.
#include <string>
#include <string_view>
#include <vector>

#include "datasets/corpus.hpp"
#include "datasets/data_error.hpp"
#include "tests/fuzz/fuzz_target.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  crt::data::Vocabulary vocab;
  std::vector<std::int32_t> ids;
  try {
    crt::data::check_well_formed_text(text, "fuzz input");
    ids = crt::data::tokenize_words(text, "fuzz input", vocab, crt::data::UnknownTokenPolicy::add_to_vocabulary);
  } catch (const crt::data::DataError&) {
    return 0;
  }
  const std::vector<std::int32_t> again =
      crt::data::tokenize_words(text, "fuzz input", vocab, crt::data::UnknownTokenPolicy::throw_error);
  FUZZ_CHECK(again == ids);
  for (const std::int32_t id : ids) {
    FUZZ_CHECK(id >= 0 && std::size_t(id) < vocab.size());
    FUZZ_CHECK(vocab.id_of(vocab.word_of(id)) == id);
  }
  if (!ids.empty()) FUZZ_CHECK(vocab.word_of(ids.back()) == "<eos>");
  return 0;
}
