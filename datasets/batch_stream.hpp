// Contiguous batched token stream for language-model training and evaluation, laid out like
// Transformer-XL's LMOrderedIterator: B parallel columns, each read front to back in segments.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace crt::data {

struct Segment {
    std::vector<std::int32_t> inputs;   // [batch, len] row-major: inputs[b * len + t]
    std::vector<std::int32_t> targets;  // [batch, len] row-major: the token that follows inputs[b * len + t]
    int batch = 0;
    int len = 0;
};

// The token vector is cut into `batch_size` columns of length L = n / batch_size (the remaining
// n % batch_size tokens are dropped); column b holds tokens b*L .. b*L+L-1. Each call to next(T)
// returns, for every column, the next T inputs and the T tokens that follow them, advancing by T.
// A column of length L yields L-1 (input, target) pairs, so the last segment may be shorter than T.
class BatchStream {
public:
    // Throws std::invalid_argument if batch_size <= 0, and DataError if a column would have fewer than
    // 2 tokens (n < 2 * batch_size).
    BatchStream(std::vector<std::int32_t> tokens, int batch_size);

    // The next segment of up to `seg_len` steps. Throws std::invalid_argument if seg_len <= 0 and
    // std::logic_error if done().
    Segment next(int seg_len);
    // As next(), reusing `segment`'s buffers.
    void next_into(int seg_len, Segment& segment);

    bool done() const { return position_ + 1 >= column_length_; }
    void reset() { position_ = 0; }
    // Continues from a saved position() (checkpoint resume). Throws std::out_of_range past the end.
    void seek(std::size_t position);

    // How many segments a full pass makes with a fixed seg_len: ceil((L - 1) / seg_len).
    std::size_t num_segments(int seg_len) const;

    int batch_size() const { return batch_size_; }
    std::size_t column_length() const { return column_length_; }
    // Offset within each column of the next segment's first input.
    std::size_t position() const { return position_; }

private:
    std::vector<std::int32_t> tokens_;  // exactly batch_size_ * column_length_ tokens
    int batch_size_ = 0;
    std::size_t column_length_ = 0;
    std::size_t position_ = 0;
};

}  // namespace crt::data
