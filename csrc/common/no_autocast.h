// Kernels compute in their inputs' dtype. An enclosing torch.autocast region stays active for
// the ATen calls made inside a kernel, so without this guard CPU bf16 autocast recast the
// style-swap product (at::mm) and the Gram gradient (at::bmm) to bfloat16, which the kernels'
// float/double dispatch then refused. Construct one at the top of a kernel that calls ATen ops
// on autocast's lists.
#pragma once

#include <c10/core/DispatchKeySet.h>
#include <c10/core/impl/LocalDispatchKeySet.h>

namespace pytexsynth {

struct NoAutocast {
  c10::impl::ExcludeDispatchKeyGuard guard{c10::autocast_dispatch_keyset};
};

}  // namespace pytexsynth
