// Package acceptance replays the acceptance cases of a fixtures folder
// (cases.yaml, format in its header) through the built cicdstatemgr CLI
// against a real redis-server and a local echo server.
package acceptance

import (
	"io"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"

	"github.com/cicdstatemgr/cicdstatemgr/pkg/document"
)

// Request is one request the echo server received.
type Request struct {
	Method  string
	Path    string
	Headers map[string]string // lower-case names
	Body    string
}

// EchoServer answers every POST like postman-echo.com/post and records it.
type EchoServer struct {
	Addr string
	srv  *http.Server
	ln   net.Listener

	mu   sync.Mutex
	reqs []Request
}

// StartEcho starts the echo server on a free loopback port.
func StartEcho() (*EchoServer, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	e := &EchoServer{Addr: ln.Addr().String(), ln: ln}
	e.srv = &http.Server{Handler: http.HandlerFunc(e.serve)}
	go e.srv.Serve(ln)
	return e, nil
}

// Close stops the server.
func (e *EchoServer) Close() { e.srv.Close() }

// Take returns and forgets the recorded requests.
func (e *EchoServer) Take() []Request {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := e.reqs
	e.reqs = nil
	return out
}

func (e *EchoServer) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	headers := map[string]string{"host": r.Host}
	for k, v := range r.Header {
		headers[strings.ToLower(k)] = strings.Join(v, ", ")
	}
	e.mu.Lock()
	e.reqs = append(e.reqs, Request{Method: r.Method, Path: r.URL.Path, Headers: headers, Body: string(body)})
	e.mu.Unlock()

	var data, js any = string(body), nil
	if v, err := document.ParseJSON(body); err == nil {
		data, js = v, v
	}
	hm := document.NewMap()
	names := make([]string, 0, len(headers))
	for k := range headers {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		hm.Set(k, headers[k])
	}
	reply := document.NewMap()
	reply.Set("args", document.NewMap())
	reply.Set("data", data)
	reply.Set("files", document.NewMap())
	reply.Set("form", document.NewMap())
	reply.Set("headers", hm)
	reply.Set("json", js)
	reply.Set("url", "http://"+e.Addr+r.URL.Path)
	out, _ := document.MarshalJSON(reply, document.JSONStyle{})
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Write(out)
}
