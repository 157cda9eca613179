#pragma once
// Evaluation of a parsed template: variable scopes with jinja2's rules (for-loop
// bodies and macro calls get their own scope, if-blocks do not), output
// buffering for macros and block assignments, and template positions on errors.
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>

#include "runtime/text/jinja/ast.hpp"
#include "runtime/text/jinja/value.hpp"

namespace quanteval::runtime::jinja {

// One level of variables. Lookups walk to the parent; assignments stay local,
// which is why jinja2 templates need namespace() to carry state out of loops.
struct Scope {
  explicit Scope(std::shared_ptr<Scope> enclosing = nullptr) : parent(std::move(enclosing)) {}
  std::unordered_map<std::string, Value> variables;
  std::shared_ptr<Scope> parent;
};

// An evaluation error with the template position where it happened.
struct RenderError : std::runtime_error {
  RenderError(const std::string& message, SourcePosition where);
  std::string bare_message;
  SourcePosition position;
};

class Renderer {
 public:
  // `globals` holds the render context and builtins; the template's own top-level
  // assignments go into a scope below it.
  explicit Renderer(std::shared_ptr<Scope> globals);

  // Renders the template. Throws RenderError (evaluation errors, with position)
  // or RaisedByTemplate (raise_exception).
  std::string render(const SequenceStmt& root);

  // ---- used by the tree's evaluate/render methods ----
  Value lookup(const std::string& name) const;
  void assign(const std::string& name, Value value);
  void write(std::string_view text) { output_->append(text); }

  // Runs statements in order, stopping at break/continue; errors gain positions.
  Flow render_body(const Body& body);
  // Renders statements into a string inside `scope` (macro calls, {% set %} blocks).
  std::string capture(const Body& body, std::shared_ptr<Scope> scope);
  std::string capture(const Body& body) { return capture(body, scope_); }

  const std::shared_ptr<Scope>& current_scope() const { return scope_; }

  // Makes `scope` current until the guard dies (for-loop iterations).
  class ScopeGuard {
   public:
    ScopeGuard(Renderer& renderer, std::shared_ptr<Scope> scope);
    ~ScopeGuard();
    ScopeGuard(const ScopeGuard&) = delete;
    ScopeGuard& operator=(const ScopeGuard&) = delete;

   private:
    Renderer& renderer_;
    std::shared_ptr<Scope> saved_;
  };

 private:
  std::shared_ptr<Scope> scope_;
  std::string* output_ = nullptr;
};

// The globals transformers puts in every chat template's environment:
// range, namespace, dict, raise_exception, strftime_now.
void install_builtin_globals(Scope& scope);

}  // namespace quanteval::runtime::jinja
