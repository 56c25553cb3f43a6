package graphfake

import (
	"encoding/json"
	"fmt"
	"net/http"
	"path"
	"strings"
	"time"

	"keycard/internal/fakewire"
)

// graphJSON is the Content-Type Graph puts on its JSON answers.
const graphJSON = "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8"

// statusWriter remembers the status for the request log.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// serve is the one entry point: log, latency, faults, then routing.
func (s *Server) serve(rw http.ResponseWriter, r *http.Request) {
	p := path.Clean("/" + r.URL.Path)
	w := &statusWriter{ResponseWriter: rw}

	s.mu.Lock()
	idx := len(s.requests)
	s.requests = append(s.requests, Request{Method: r.Method, Path: p, Query: r.URL.Query(), At: s.now()})
	var delay time.Duration
	for _, l := range s.latencies {
		if fakewire.Match(l.method, l.pattern, r.Method, p) && l.d > delay {
			delay = l.d
		}
	}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		if idx < len(s.requests) {
			s.requests[idx].Status = w.status
		}
		s.mu.Unlock()
	}()

	if delay > 0 {
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return
		case <-s.quit:
			t.Stop()
			return
		}
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	reqID := fmt.Sprintf("%08x-0000-4000-8000-%012d", len(s.requests), idx)
	w.Header().Set("Date", now.Format(http.TimeFormat))
	w.Header().Set("request-id", reqID)
	if c := r.Header.Get("client-request-id"); c != "" {
		w.Header().Set("client-request-id", c)
	}

	var truncate bool
	for _, f := range s.faults {
		if f.n <= 0 || !fakewire.Match(f.method, f.pattern, r.Method, p) {
			continue
		}
		f.n--
		switch f.kind {
		case faultHTML:
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			w.WriteHeader(f.status)
			fmt.Fprintf(w, "<!DOCTYPE html>\n<html><head><title>%d %s</title></head><body><h1>%s</h1><p>The gateway could not reach the service.</p></body></html>\n",
				f.status, http.StatusText(f.status), http.StatusText(f.status))
			return
		case faultTruncate:
			truncate = true
		case faultEmpty:
			writeJSON(w, http.StatusOK, map[string]any{})
			return
		default:
			if f.retryAfter > 0 && (f.status == 429 || f.status == 503 || f.status == 504) {
				w.Header().Set("Retry-After", fmt.Sprint(int((f.retryAfter+time.Second-1)/time.Second)))
			}
			code, msg := errorFor(f.status)
			s.graphError(w, r, f.status, code, msg)
			return
		}
		break
	}
	if truncate {
		tw := &truncWriter{h: http.Header{}}
		s.route(tw, r, p)
		for k, v := range tw.h {
			w.Header()[k] = v
		}
		w.WriteHeader(tw.status())
		body := []byte(tw.buf.String())
		_, _ = w.Write(body[:len(body)/2])
		return
	}
	s.route(w, r, p)
}

// errorFor gives Graph's error code and message for an injected status.
func errorFor(status int) (string, string) {
	switch status {
	case http.StatusTooManyRequests:
		return "TooManyRequests", "Too many requests."
	case http.StatusServiceUnavailable:
		return "serviceNotAvailable", "Service is temporarily unavailable. Please try again later."
	case http.StatusGatewayTimeout:
		return "gatewayTimeout", "The request timed out."
	case http.StatusUnauthorized:
		return "InvalidAuthenticationToken", "Access token validation failure."
	case http.StatusForbidden:
		return "Authorization_RequestDenied", "Insufficient privileges to complete the operation."
	case http.StatusNotFound:
		return "Request_ResourceNotFound", "Resource does not exist or one of its queried reference-property objects are not present."
	}
	if status >= 500 {
		return "UnknownError", ""
	}
	return "BadRequest", "Bad request."
}

func (s *Server) route(w http.ResponseWriter, r *http.Request, p string) {
	seg := strings.Split(strings.TrimPrefix(p, "/"), "/")
	if len(seg) >= 1 && seg[0] != "v1.0" {
		s.authority(w, r, seg)
		return
	}
	if !s.authorized(w, r) {
		return
	}
	seg = seg[1:]
	get := r.Method == http.MethodGet
	n := len(seg)
	switch {
	case n == 1 && seg[0] == "users" && get:
		s.listUsers(w, r)
	case n == 2 && seg[0] == "users" && seg[1] == "delta" && get:
		s.usersDelta(w, r)
	case n == 2 && seg[0] == "users" && get:
		s.getUser(w, r, seg[1])
	case n == 3 && seg[0] == "users" && seg[2] == "manager" && get:
		s.getManager(w, r, seg[1])
	case n == 1 && seg[0] == "groups" && get:
		s.listGroups(w, r)
	case n == 2 && seg[0] == "groups" && get:
		s.getGroup(w, r, seg[1])
	case n == 3 && seg[0] == "groups" && seg[2] == "members" && get:
		s.listMembers(w, r, seg[1])
	case n == 4 && seg[0] == "groups" && seg[2] == "members" && seg[3] == "$ref" && r.Method == http.MethodPost:
		s.addMember(w, r, seg[1])
	case n == 5 && seg[0] == "groups" && seg[2] == "members" && seg[4] == "$ref" && r.Method == http.MethodDelete:
		s.removeMember(w, r, seg[1], seg[3])
	case n >= 1 && (seg[0] == "users" || seg[0] == "groups"):
		s.graphError(w, r, http.StatusMethodNotAllowed, "Request_BadRequest", "Specified HTTP method is not allowed for the request target.")
	default:
		s.graphError(w, r, http.StatusBadRequest, "BadRequest", "Resource not found for the segment '"+seg[0]+"'.")
	}
}

// authorized checks the bearer token: present, issued here, not expired.
func (s *Server) authorized(w http.ResponseWriter, r *http.Request) bool {
	auth := r.Header.Get("Authorization")
	tok, ok := strings.CutPrefix(auth, "Bearer ")
	if !ok || tok == "" {
		s.graphError(w, r, http.StatusUnauthorized, "InvalidAuthenticationToken", "Access token is empty.")
		return false
	}
	exp, known := s.tokens[tok]
	switch {
	case !known:
		s.graphError(w, r, http.StatusUnauthorized, "InvalidAuthenticationToken", "IDX14100: JWT is not well formed.")
		return false
	case !s.now().Before(exp):
		s.graphError(w, r, http.StatusUnauthorized, "InvalidAuthenticationToken", "Lifetime validation failed, the token is expired.")
		return false
	}
	return true
}

// graphError writes Graph's error body.
func (s *Server) graphError(w http.ResponseWriter, r *http.Request, status int, code, msg string) {
	body := map[string]any{"error": map[string]any{
		"code":    code,
		"message": msg,
		"innerError": map[string]any{
			"date":              s.now().Format("2006-01-02T15:04:05"),
			"request-id":        w.Header().Get("request-id"),
			"client-request-id": firstNonEmpty(r.Header.Get("client-request-id"), w.Header().Get("request-id")),
		},
	}}
	writeJSON(w, status, body)
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", graphJSON)
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// truncWriter buffers a response so a fault can cut it short.
type truncWriter struct {
	h    http.Header
	code int
	buf  strings.Builder
}

func (t *truncWriter) Header() http.Header { return t.h }
func (t *truncWriter) WriteHeader(c int) {
	if t.code == 0 {
		t.code = c
	}
}
func (t *truncWriter) Write(b []byte) (int, error) { return t.buf.Write(b) }
func (t *truncWriter) status() int {
	if t.code == 0 {
		return http.StatusOK
	}
	return t.code
}
