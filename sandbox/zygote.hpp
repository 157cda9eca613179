#pragma once
// Internal: the Python source of the per-worker fork server (see zygote.cpp).
namespace quanteval::sandbox::detail {
extern const char* const kZygoteSource;
}  // namespace quanteval::sandbox::detail
