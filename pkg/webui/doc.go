// Package webui serves the controller's read-mostly web page (docs/webui.md):
// the cicd contexts of the namespaces a viewer may see, one context's state as
// a tree and its history as a timeline, and the pending ApprovalGates of a
// namespace with their options and approvals so far, which the viewer may
// decide where the gate's own identity rules let them.
//
// Who the viewer is comes from a Kubernetes bearer token: the Authorization
// header (an auth proxy in front) or the HttpOnly cookie the login form sets
// (kubectl port-forward). The token is checked with a TokenReview; a namespace
// is shown only when a SubjectAccessReview says the viewer may get CustomRuns
// there, and a refused namespace reads the same whether it exists or not.
// Decisions are written to the API server with the viewer's own token (no
// impersonation), so RBAC and the ApprovalGate admission policy judge them as
// they judge kubectl.
//
// Every page is rendered on the server with html/template (state values are
// user data: autoescaped, never markup), with no JavaScript at all and a
// Content-Security-Policy that would not run any; every page is bounded
// (contexts, tree nodes, value bytes, history entries, gates) and forms carry
// a CSRF token derived from the viewer's token.
package webui
