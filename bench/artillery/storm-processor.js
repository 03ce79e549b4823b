// Helpers for client-scenario.yml: a real client that is told 503 waits for
// Retry-After and tries again (a few times) instead of giving up.
module.exports = { needsLogin };

function needsLogin(context, next) {
  context.vars.loginAttempts = (context.vars.loginAttempts || 0) + 1;
  return next(!context.vars.access && context.vars.loginAttempts <= 10);
}
