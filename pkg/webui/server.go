package webui

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"embed"
	"encoding/base64"
	"errors"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/cicdstatemgr/cicdstatemgr/pkg/document"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/history"
	"github.com/cicdstatemgr/cicdstatemgr/pkg/httpserver"
)

// DefaultAddr is the default of the controller's --ui-addr.
const DefaultAddr = ":8092"

// MaxFormBytes bounds the body of a form post (login, decide, logout).
const MaxFormBytes = 16 << 10

// loginCookie holds the random value the login form must echo (a
// double-submit CSRF token: there is no bearer token yet to derive one from).
const loginCookie = "cicdstatemgr-login"

// ContextSummary is one context of a namespace as the store lists it.
type ContextSummary struct {
	ID      string
	Updated time.Time
}

// Store is what the page reads of the cicd contexts (pkg/store).
type Store interface {
	// Contexts lists a namespace's contexts, most recently written first.
	Contexts(ctx context.Context, namespace string, limit int) ([]ContextSummary, error)
	// History lists the entries of ref ("<namespace>/<id>"), newest first.
	History(ctx context.Context, ref string, limit int) ([]history.Entry, error)
	// Get reads the document of ref (store.ErrNotFound when missing).
	Get(ctx context.Context, ref string) (*document.Map, error)
}

// Options configure the page.
type Options struct {
	// Store is the current store; nil until the controller has a
	// configuration (the page answers 503 then).
	Store func() Store
	// Kube is the controller's own client: TokenReviews,
	// SubjectAccessReviews, and the list of namespaces of the home page.
	Kube kubernetes.Interface
	// ViewerClient is a client that acts as the viewer (ViewerClients).
	ViewerClient func(token string) (dynamic.Interface, error)
	Log          *slog.Logger
	// Exceeded is told of a form body over MaxFormBytes (httpserver.BudgetBody).
	Exceeded func(budget string)
}

// Limits are the listener's limits (pkg/httpserver): pages are small and
// quick, a person clicks; a few tabs per client.
func Limits() httpserver.Limits {
	return httpserver.Limits{
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      20 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    32 << 10,
		MaxInFlight:       32,
		MaxConnsPerClient: 16,
	}
}

//go:embed templates/*.html static/*
var assets embed.FS

// Server serves the page.
type Server struct {
	o      Options
	auth   *authenticator
	pages  map[string]*template.Template
	css    []byte
	nsList *ttlCache[[]string]
}

// New builds the page's server.
func New(o Options) *Server {
	if o.Log == nil {
		o.Log = slog.Default()
	}
	s := &Server{o: o, auth: newAuthenticator(o.Kube), pages: map[string]*template.Template{},
		nsList: newTTLCache[[]string](AccessTTL, 1)}
	for _, p := range []string{"login", "home", "namespace", "context", "decided", "problem"} {
		s.pages[p] = template.Must(template.New("layout.html").Funcs(funcs).ParseFS(assets, "templates/layout.html", "templates/gates.html", "templates/"+p+".html"))
	}
	css, err := fs.ReadFile(assets, "static/style.css")
	if err != nil {
		panic(err)
	}
	s.css = css
	return s
}

// Handler is the page's routes, with its security headers.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /static/style.css", s.serveCSS)
	mux.HandleFunc("GET /login", s.loginForm)
	mux.HandleFunc("POST /login", s.login)
	mux.HandleFunc("POST /logout", s.viewer(s.logout))
	mux.HandleFunc("GET /{$}", s.viewer(s.home))
	mux.HandleFunc("GET /ns", s.viewer(s.openNamespace))
	mux.HandleFunc("GET /ns/{ns}/{$}", s.viewer(s.namespacePage))
	mux.HandleFunc("GET /ns/{ns}/contexts/{id}", s.viewer(s.contextPage))
	mux.HandleFunc("POST /ns/{ns}/gates/{name}/decide", s.viewer(s.decide))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.problem(w, http.StatusNotFound, "Not found", "There is no such page.", nil)
	})
	return secureHeaders(mux)
}

// secureHeaders: no script, style or form target but our own, no framing, no
// sniffing, no caching (every page but the stylesheet shows what one viewer
// may see), no referrer (context ids are in the URLs).
func secureHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("X-Frame-Options", "DENY")
		hd.Set("Referrer-Policy", "no-referrer")
		hd.Set("Cache-Control", "no-store")
		h.ServeHTTP(w, r)
	})
}

func (s *Server) serveCSS(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/css; charset=utf-8")
	w.Header().Set("Cache-Control", "public, max-age=300")
	w.Write(s.css)
}

// viewer authenticates the request before h: no token or a refused one gets
// the login page (401); an API server that cannot be asked, 503.
func (s *Server) viewer(h func(http.ResponseWriter, *http.Request, *Viewer)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		token, err := tokenOf(r)
		var v *Viewer
		if err == nil {
			v, err = s.auth.authenticate(r.Context(), token)
		}
		switch {
		case errors.Is(err, errNoToken):
			s.loginPage(w, r, http.StatusUnauthorized, "")
			return
		case errors.Is(err, errBadToken):
			clearCookie(w, r, CookieName)
			s.loginPage(w, r, http.StatusUnauthorized, "The API server does not accept this token (expired, revoked or not a token): log in again.")
			return
		case err != nil:
			s.o.Log.Warn("web UI: cannot authenticate a request", "error", err)
			s.problem(w, http.StatusServiceUnavailable, "Try again", "The API server cannot be asked who you are right now.", nil)
			return
		}
		if r.Method == http.MethodPost && !s.checkForm(w, r, v.CSRF()) {
			return
		}
		h(w, r, v)
	}
}

// checkForm reads a posted form (at most MaxFormBytes) and checks that it
// comes from our own page: its csrf field equals want, and the browser does
// not say it was sent by another site.
func (s *Server) checkForm(w http.ResponseWriter, r *http.Request, want string) bool {
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" && site != "none" {
		s.problem(w, http.StatusForbidden, "Refused", "This form was not sent from this page.", nil)
		return false
	}
	r.Body = http.MaxBytesReader(w, r.Body, MaxFormBytes)
	if err := r.ParseForm(); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			if s.o.Exceeded != nil {
				s.o.Exceeded(httpserver.BudgetBody)
			}
			s.problem(w, http.StatusRequestEntityTooLarge, "Too large", "The form is larger than the page accepts.", nil)
			return false
		}
		s.problem(w, http.StatusBadRequest, "Bad request", "The form cannot be read.", nil)
		return false
	}
	got := r.PostForm.Get("csrf")
	if want == "" || subtle.ConstantTimeCompare([]byte(got), []byte(want)) != 1 {
		s.problem(w, http.StatusForbidden, "Refused", "This form is stale or was not sent from this page: reload the page and try again.", nil)
		return false
	}
	return true
}

// page is what every template gets.
type page struct {
	Title  string
	Viewer *Viewer
	CSRF   string
	Data   any
}

func (s *Server) render(w http.ResponseWriter, status int, name string, p page) {
	if p.Viewer != nil {
		p.CSRF = p.Viewer.CSRF()
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	if err := s.pages[name].Execute(w, p); err != nil {
		s.o.Log.Warn("web UI: rendering a page", "page", name, "error", err)
	}
}

type problemData struct {
	Heading, Text string
}

func (s *Server) problem(w http.ResponseWriter, status int, heading, text string, v *Viewer) {
	s.render(w, status, "problem", page{Title: heading, Viewer: v, Data: problemData{heading, text}})
}

// forbidden is the one answer for a namespace the viewer may not see,
// whether it exists or not.
func (s *Server) forbidden(w http.ResponseWriter, v *Viewer, ns string) {
	s.problem(w, http.StatusForbidden, "Not allowed",
		"Namespace "+ns+" does not exist or you may not get its CustomRuns.", v)
}

type loginData struct {
	Message string
}

func (s *Server) loginForm(w http.ResponseWriter, r *http.Request) {
	s.loginPage(w, r, http.StatusOK, "")
}

// loginPage sets a fresh login CSRF cookie and shows the form with it.
func (s *Server) loginPage(w http.ResponseWriter, r *http.Request, status int, msg string) {
	b := make([]byte, 24)
	rand.Read(b)
	token := base64.RawURLEncoding.EncodeToString(b)
	setCookie(w, r, loginCookie, token, "/login")
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="cicdstatemgr"`)
	}
	s.render(w, status, "login", page{Title: "Log in", CSRF: token, Data: loginData{Message: msg}})
}

// login checks the pasted token with a TokenReview and keeps it in an
// HttpOnly cookie.
func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	c, err := r.Cookie(loginCookie)
	want := ""
	if err == nil {
		want = c.Value
	}
	if !s.checkForm(w, r, want) {
		return
	}
	token := strings.TrimSpace(r.PostForm.Get("token"))
	if !wellFormedToken(token) || token == "" {
		s.loginPage(w, r, http.StatusUnauthorized, "Paste a Kubernetes bearer token (kubectl create token ...).")
		return
	}
	if _, err := s.auth.authenticate(r.Context(), token); err != nil {
		if !errors.Is(err, errBadToken) {
			s.o.Log.Warn("web UI: cannot check a token at login", "error", err)
		}
		s.loginPage(w, r, http.StatusUnauthorized, "The API server does not accept this token.")
		return
	}
	setCookie(w, r, CookieName, token, "/")
	clearCookie(w, r, loginCookie)
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

func (s *Server) logout(w http.ResponseWriter, r *http.Request, _ *Viewer) {
	clearCookie(w, r, CookieName)
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

func setCookie(w http.ResponseWriter, r *http.Request, name, value, path string) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: value, Path: path, HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil})
}

func clearCookie(w http.ResponseWriter, r *http.Request, name string) {
	path := "/"
	if name == loginCookie {
		path = "/login"
	}
	http.SetCookie(w, &http.Cookie{Name: name, Value: "", Path: path, MaxAge: -1, HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil})
}

func nsURL(ns string) string { return "/ns/" + url.PathEscape(ns) + "/" }

func contextURL(ns, id string) string {
	return "/ns/" + url.PathEscape(ns) + "/contexts/" + url.PathEscape(id)
}

func gateURL(ns, name string) string {
	return "/ns/" + url.PathEscape(ns) + "/gates/" + url.PathEscape(name)
}
