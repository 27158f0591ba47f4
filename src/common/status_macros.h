// Propagation helpers for absl::Status / absl::StatusOr.
#pragma once

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define AGENTD_CONCAT_INNER_(a, b) a##b
#define AGENTD_CONCAT_(a, b) AGENTD_CONCAT_INNER_(a, b)

/// Returns from the enclosing function when `expr` is not OK.
#define AGENTD_RETURN_IF_ERROR(expr)            \
  do {                                          \
    ::absl::Status agentd_status_ = (expr);     \
    if (!agentd_status_.ok()) return agentd_status_; \
  } while (0)

#define AGENTD_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                                  \
  if (!tmp.ok()) return std::move(tmp).status();      \
  lhs = std::move(tmp).value()

/// `AGENTD_ASSIGN_OR_RETURN(auto x, F());` binds the value or returns the error.
#define AGENTD_ASSIGN_OR_RETURN(lhs, expr) \
  AGENTD_ASSIGN_OR_RETURN_IMPL_(AGENTD_CONCAT_(agentd_statusor_, __LINE__), lhs, expr)
