// BatchStream: cuts a token vector into B contiguous columns and serves [B, T] input/target segments
// in order (Transformer-XL LMOrderedIterator layout), so hidden state can be carried across segments.
#include "datasets/batch_stream.hpp"

#include "datasets/data_error.hpp"

#include <algorithm>
#include <cstddef>
#include <stdexcept>
#include <string>
#include <utility>

namespace crt::data {

BatchStream::BatchStream(std::vector<std::int32_t> tokens, int batch_size) : batch_size_(batch_size) {
    if (batch_size <= 0) {
        throw std::invalid_argument("BatchStream: batch size must be positive, got " + std::to_string(batch_size));
    }
    const auto columns = static_cast<std::size_t>(batch_size);
    column_length_ = tokens.size() / columns;
    if (column_length_ < 2) {
        throw DataError("BatchStream: " + std::to_string(tokens.size()) + " tokens are too few for batch size " +
                        std::to_string(batch_size) + " (each column needs at least 2 tokens)");
    }
    tokens.resize(columns * column_length_);  // drop the remainder
    tokens_ = std::move(tokens);
}

std::size_t BatchStream::num_segments(int seg_len) const {
    if (seg_len <= 0) {
        throw std::invalid_argument("BatchStream: segment length must be positive, got " + std::to_string(seg_len));
    }
    const std::size_t steps = column_length_ - 1;
    const auto length = static_cast<std::size_t>(seg_len);
    return (steps + length - 1) / length;
}

void BatchStream::next_into(int seg_len, Segment& segment) {
    if (seg_len <= 0) {
        throw std::invalid_argument("BatchStream: segment length must be positive, got " + std::to_string(seg_len));
    }
    if (done()) throw std::logic_error("BatchStream: next() called after the end of the stream (call reset())");

    const std::size_t length = std::min(static_cast<std::size_t>(seg_len), column_length_ - 1 - position_);
    const auto columns = static_cast<std::size_t>(batch_size_);
    segment.batch = batch_size_;
    segment.len = static_cast<int>(length);
    segment.inputs.resize(columns * length);
    segment.targets.resize(columns * length);
    for (std::size_t b = 0; b < columns; ++b) {
        const std::int32_t* column_at_position = tokens_.data() + b * column_length_ + position_;
        std::copy_n(column_at_position, length, segment.inputs.begin() + static_cast<std::ptrdiff_t>(b * length));
        std::copy_n(column_at_position + 1, length, segment.targets.begin() + static_cast<std::ptrdiff_t>(b * length));
    }
    position_ += length;
}

Segment BatchStream::next(int seg_len) {
    Segment segment;
    next_into(seg_len, segment);
    return segment;
}

void BatchStream::seek(std::size_t position) {
    if (position >= column_length_)
        throw std::out_of_range("BatchStream::seek: position " + std::to_string(position) +
                                " is past the column length " + std::to_string(column_length_));
    position_ = position;
}

}  // namespace crt::data
