// Umbrella header: everything a user of the engine needs.
#pragma once

#include "engine/autograd.hpp"
#include "engine/error.hpp"
#include "engine/flops.hpp"
#include "engine/linalg.hpp"
#include "engine/ops.hpp"
#include "engine/optim.hpp"
#include "engine/parallel.hpp"
#include "engine/random.hpp"
#include "engine/schedule.hpp"
#include "engine/shape.hpp"
#include "engine/tensor.hpp"
#include "engine/weight_cache.hpp"
