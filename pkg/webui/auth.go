package webui

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	authzv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// CookieName holds the viewer's token after the login form (HttpOnly,
// SameSite=Strict, Secure when served over TLS).
const CookieName = "cicdstatemgr-token"

// MaxTokenBytes bounds a bearer token: Kubernetes tokens are a few KiB at
// most; anything longer is refused before it reaches a TokenReview.
const MaxTokenBytes = 8 << 10

// How long a review answer is reused, and how many are kept.
const (
	ReviewTTL      = 30 * time.Second
	AccessTTL      = 10 * time.Second
	MaxCachedViews = 4096
)

// The viewer may see a namespace when they may get CustomRuns there: the
// permission `tkn cicdstatemgr context get` and pipeline authors have.
const (
	accessGroup    = "tekton.dev"
	accessResource = "customruns"
	accessVerb     = "get"
)

var (
	// errNoToken: the request carries no token (login page, 401).
	errNoToken = errors.New("no bearer token")
	// errBadToken: the API server does not accept the token (login page, 401).
	errBadToken = errors.New("the token is not accepted by the API server")
)

// Viewer is who asked, as the API server authenticated their token.
type Viewer struct {
	Token string
	User  authnv1.UserInfo
	// key names the token in caches and derives its CSRF token; the token
	// itself is never a map key or logged.
	key string
}

// Name is the viewer's username.
func (v *Viewer) Name() string { return v.User.Username }

// CSRF is the token a form of this viewer must carry: derived from their
// bearer token, so it needs no server state (any replica checks it) and no
// other site can compute it.
func (v *Viewer) CSRF() string {
	sum := sha256.Sum256([]byte("cicdstatemgr-webui-csrf\x00" + v.Token))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

type review struct {
	user          authnv1.UserInfo
	authenticated bool
}

// authenticator asks the API server who a token is (TokenReview) and whether
// they may see a namespace (SubjectAccessReview), with the controller's own
// credentials, and remembers the answers briefly.
type authenticator struct {
	kube   kubernetes.Interface
	users  *ttlCache[review]
	access *ttlCache[bool]
}

func newAuthenticator(kube kubernetes.Interface) *authenticator {
	return &authenticator{kube: kube,
		users:  newTTLCache[review](ReviewTTL, MaxCachedViews),
		access: newTTLCache[bool](AccessTTL, MaxCachedViews)}
}

// tokenOf is the request's bearer token: the Authorization header (an auth
// proxy), else the login cookie.
func tokenOf(r *http.Request) (string, error) {
	t := ""
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, rest, ok := strings.Cut(h, " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") {
			return "", errBadToken
		}
		t = strings.TrimSpace(rest)
	} else if c, err := r.Cookie(CookieName); err == nil {
		t = c.Value
	}
	switch {
	case t == "":
		return "", errNoToken
	case !wellFormedToken(t):
		return "", errBadToken
	}
	return t, nil
}

// wellFormedToken: not too long, printable ASCII without spaces (what a JWT
// or a static token is).
func wellFormedToken(t string) bool {
	if len(t) > MaxTokenBytes {
		return false
	}
	for i := 0; i < len(t); i++ {
		if t[i] <= ' ' || t[i] > '~' {
			return false
		}
	}
	return true
}

func tokenKey(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// authenticate checks token with a TokenReview: errBadToken when the API
// server does not accept it; another error when it cannot be asked.
func (a *authenticator) authenticate(ctx context.Context, token string) (*Viewer, error) {
	key := tokenKey(token)
	rv, ok := a.users.get(key)
	if !ok {
		tr, err := a.kube.AuthenticationV1().TokenReviews().Create(ctx,
			&authnv1.TokenReview{Spec: authnv1.TokenReviewSpec{Token: token}}, metav1.CreateOptions{})
		if err != nil {
			return nil, fmt.Errorf("asking the API server who the token is (TokenReview): %w", err)
		}
		rv = review{user: tr.Status.User, authenticated: tr.Status.Authenticated && tr.Status.User.Username != ""}
		a.users.put(key, rv)
	}
	if !rv.authenticated {
		return nil, errBadToken
	}
	return &Viewer{Token: token, User: rv.user, key: key}, nil
}

// mayView asks whether v may get CustomRuns in namespace ns.
func (a *authenticator) mayView(ctx context.Context, v *Viewer, ns string) (bool, error) {
	key := v.key + "\x00" + ns
	if ok, found := a.access.get(key); found {
		return ok, nil
	}
	extra := map[string]authzv1.ExtraValue{}
	for k, vals := range v.User.Extra {
		extra[k] = authzv1.ExtraValue(vals)
	}
	sar, err := a.kube.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authzv1.SubjectAccessReview{
		Spec: authzv1.SubjectAccessReviewSpec{
			User: v.User.Username, Groups: v.User.Groups, UID: v.User.UID, Extra: extra,
			ResourceAttributes: &authzv1.ResourceAttributes{
				Namespace: ns, Verb: accessVerb, Group: accessGroup, Resource: accessResource,
			},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		return false, fmt.Errorf("asking the API server whether %s may get customruns in %s (SubjectAccessReview): %w", v.Name(), ns, err)
	}
	allowed := sar.Status.Allowed && !sar.Status.Denied
	a.access.put(key, allowed)
	return allowed, nil
}
