package slackemu

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	_ "time/tzdata" // users.info reports tz_offset for any IANA zone, even on hosts without zoneinfo.

	"github.com/gorilla/websocket"
)

// Defaults for Options fields left empty.
const (
	DefaultBotToken = "xoxb-test"
	DefaultAppToken = "xapp-test"
	DefaultTeamID   = "T0KEYCARD"
	// DefaultPingInterval keeps slack-go's 30 s dead-man timer
	// (socketmode maxPingInterval) from ever firing.
	DefaultPingInterval = 5 * time.Second
	// DefaultAckTimeout is Slack's Socket Mode acknowledgement deadline
	// (https://api.slack.com/apis/connections/socket-implement).
	DefaultAckTimeout = 3 * time.Second
	// DefaultTriggerTTL is how long a trigger_id can be exchanged for a
	// modal (Slack: "trigger_id expires after 3 seconds").
	DefaultTriggerTTL = 3 * time.Second
)

// Options configure a Server. Zero values take the defaults above.
type Options struct {
	BotToken string
	AppToken string
	TeamID   string
	// TeamDomain is the workspace subdomain in auth.test and payloads.
	TeamDomain string
	// BotUserID, BotID and AppID identify the app's bot user.
	BotUserID string
	BotID     string
	AppID     string
	// PingInterval is how often WebSocket PING frames are sent.
	PingInterval time.Duration
	// AckTimeout is how long a delivered envelope waits for its ack.
	AckTimeout time.Duration
	// TriggerTTL is how long a trigger_id stays valid, measured on Clock.
	TriggerTTL time.Duration
	// Clock stamps ts/created values and ages trigger_ids. Default time.Now.
	Clock func() time.Time
	// Logf receives one line per notable event; nil discards.
	Logf func(format string, args ...any)
}

func (o Options) withDefaults() Options {
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	def(&o.BotToken, DefaultBotToken)
	def(&o.AppToken, DefaultAppToken)
	def(&o.TeamID, DefaultTeamID)
	def(&o.TeamDomain, "keycard")
	def(&o.BotUserID, "U0KEYBOT")
	def(&o.BotID, "B0KEYBOT")
	def(&o.AppID, "A0KEYCARD")
	if o.PingInterval <= 0 {
		o.PingInterval = DefaultPingInterval
	}
	if o.AckTimeout <= 0 {
		o.AckTimeout = DefaultAckTimeout
	}
	if o.TriggerTTL <= 0 {
		o.TriggerTTL = DefaultTriggerTTL
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	return o
}

// Errors returned by the acting-as-people calls.
var (
	// ErrNoAck: the bot did not acknowledge the envelope within AckTimeout.
	ErrNoAck = errors.New("slackemu: envelope not acknowledged in time")
	// ErrNotConnected: no Socket Mode connection is open (Slack would show
	// the user "dispatch_failed").
	ErrNotConnected = errors.New("slackemu: no socket mode connection")
	// ErrNoSuchButton: the clicked element is not in the stored blocks.
	ErrNoSuchButton = errors.New("no such button")
	// ErrNotFound: an unknown user, channel, message or view.
	ErrNotFound = errors.New("slackemu: not found")
	// ErrRejected: the ack payload is one real Slack would refuse (invalid
	// blocks, errors keyed by a non-input block, ...); the user would see
	// "We had some trouble connecting".
	ErrRejected = errors.New("slackemu: ack payload rejected")
	// ErrNotAllowed: the person cannot do that in the Slack client (submit a
	// modal without a submit button, leave a required input empty, act on a
	// view that is not on top of their stack).
	ErrNotAllowed = errors.New("slackemu: not possible in the Slack client")
)

// Server is a running emulator. All methods are safe for concurrent use.
type Server struct {
	opts Options
	// envTeam, when set, is the team id envelopes carry instead of
	// Options.TeamID (SetEnvelopeTeam).
	envTeam  string
	ln       net.Listener
	httpSrv  *http.Server
	base     string // http://127.0.0.1:PORT
	upgrader websocket.Upgrader
	ctx      context.Context
	cancel   context.CancelFunc
	wg       sync.WaitGroup

	mu      sync.Mutex
	changed chan struct{}
	seq     int
	lastTS  int64 // microseconds since the epoch of the last ts handed out

	users     map[string]*User
	userOrder []string
	channels  map[string]*channel
	chanOrder []string
	dmByUser  map[string]string

	messages      map[string][]*Message
	posts         []Message // every chat.postMessage as posted
	ephemerals    map[string][]Message
	responsePosts []ResponseURLPost
	responseURLs  map[string]*responseTarget

	views    map[string]*view
	stacks   map[string][]string
	homes    map[string]string
	triggers map[string]*trigger

	files     map[string]*File
	fileOrder []string

	tickets    map[string]bool
	conns      []*conn
	connLog    []*Connection
	accepted   int
	rr         int
	pending    map[string]chan Ack
	envelopes  map[string]*envelope
	deliveries []Delivery

	calls      map[string]int
	rateLimits map[string]*rateLimit
	failures   map[string]*failure
}

type rateLimit struct {
	n          int
	retryAfter time.Duration
}

type failure struct {
	n    int
	code string
}

// New starts a Server on a fresh 127.0.0.1 port. It panics if it cannot
// listen, as httptest.NewServer does: a test cannot continue without it.
func New(opts Options) *Server {
	opts = opts.withDefaults()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(fmt.Sprintf("slackemu: listen: %v", err))
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{
		opts:         opts,
		ln:           ln,
		base:         "http://" + ln.Addr().String(),
		ctx:          ctx,
		cancel:       cancel,
		changed:      make(chan struct{}),
		users:        map[string]*User{},
		channels:     map[string]*channel{},
		dmByUser:     map[string]string{},
		messages:     map[string][]*Message{},
		ephemerals:   map[string][]Message{},
		responseURLs: map[string]*responseTarget{},
		views:        map[string]*view{},
		stacks:       map[string][]string{},
		homes:        map[string]string{},
		triggers:     map[string]*trigger{},
		files:        map[string]*File{},
		tickets:      map[string]bool{},
		pending:      map[string]chan Ack{},
		envelopes:    map[string]*envelope{},
		calls:        map[string]int{},
		rateLimits:   map[string]*rateLimit{},
		failures:     map[string]*failure{},
	}
	// slack-go dials with "Origin: https://api.slack.com", which gorilla's
	// default same-host check rejects (notes/slack.md §1.2).
	s.upgrader = websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}
	mux := http.NewServeMux()
	mux.HandleFunc("/api/", s.handleAPI)
	mux.HandleFunc("/link/", s.handleSocket)
	mux.HandleFunc("/upload/", s.handleUpload)
	mux.HandleFunc("/response/", s.handleResponseURL)
	s.httpSrv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	s.wg.Go(func() { _ = s.httpSrv.Serve(ln) })
	return s
}

// APIURL is the value for slack.OptionAPIURL, with the trailing slash that
// slack-go's string concatenation needs.
func (s *Server) APIURL() string { return s.base + "/api/" }

// Close stops the listener, closes every socket and waits for the
// emulator's goroutines.
func (s *Server) Close() {
	s.mu.Lock()
	s.cancel() // under mu: goLocked never Adds to wg after this
	s.mu.Unlock()
	_ = s.httpSrv.Close()
	s.mu.Lock()
	conns := append([]*conn(nil), s.conns...)
	s.mu.Unlock()
	for _, c := range conns {
		c.shut()
	}
	s.wg.Wait()
}

func (s *Server) logf(format string, args ...any) { s.opts.Logf("slackemu: "+format, args...) }

// changedLocked wakes every WaitFor; call with mu held after a mutation.
func (s *Server) changedLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// WaitFor blocks until cond(s) is true, re-evaluating it after every state
// change of the emulator, or until ctx is done. cond may call any inspection
// method of s.
func (s *Server) WaitFor(ctx context.Context, cond func(*Server) bool) error {
	for {
		s.mu.Lock()
		ch := s.changed
		s.mu.Unlock()
		if cond(s) {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("slackemu: wait: %w", ctx.Err())
		}
	}
}

func (s *Server) nextIDLocked(prefix string) string {
	s.seq++
	return fmt.Sprintf("%s%07d", prefix, s.seq)
}

// nextTSLocked returns a message ts ("seconds.micros") from Clock, bumped so
// every ts is unique and increasing across the whole workspace, and hence
// per channel as Slack guarantees.
func (s *Server) nextTSLocked() string {
	us := s.opts.Clock().UnixMicro()
	if us <= s.lastTS {
		us = s.lastTS + 1
	}
	s.lastTS = us
	return fmt.Sprintf("%d.%06d", us/1e6, us%1e6)
}

// RateLimit makes the next n calls of method answer HTTP 429 with
// Retry-After (whole seconds, rounded up, at least 1), which slack-go turns
// into *slack.RateLimitedError.
func (s *Server) RateLimit(method string, n int, retryAfter time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rateLimits[method] = &rateLimit{n: n, retryAfter: retryAfter}
}

// FailNext makes the next n calls of method answer {"ok":false,"error":code}.
func (s *Server) FailNext(method string, n int, code string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failures[method] = &failure{n: n, code: code}
}

// Calls reports how many times method was called (including rejected calls).
func (s *Server) Calls(method string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[method]
}

// CallCounts returns a copy of the per-method call counters.
func (s *Server) CallCounts() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int, len(s.calls))
	for k, v := range s.calls {
		out[k] = v
	}
	return out
}

// apiError is a logical Web API error: HTTP 200 with ok:false.
type apiError struct {
	code     string
	messages []string
}

func (e *apiError) Error() string { return e.code }

func fail(code string, messages ...string) *apiError {
	return &apiError{code: code, messages: messages}
}

// apiRequest is one Web API call's parameters, whether sent as a form
// (postMethod) or as JSON (postJSONMethod: views.*, apps.connections.open).
type apiRequest struct {
	method string
	token  string
	form   map[string]string
	json   map[string]json.RawMessage
}

// str returns a parameter as a string: form values as sent, JSON strings
// unquoted, other JSON values as their literal text.
func (r *apiRequest) str(name string) string {
	if v, ok := r.form[name]; ok {
		return v
	}
	raw, ok := r.json[name]
	if !ok {
		return ""
	}
	var sv string
	if json.Unmarshal(raw, &sv) == nil {
		return sv
	}
	if string(raw) == "null" {
		return ""
	}
	return string(raw)
}

// rawJSON returns a parameter that carries JSON: in a form it is a JSON
// string field ("blocks=[...]"), in a JSON body it is the value itself.
func (r *apiRequest) rawJSON(name string) (json.RawMessage, bool) {
	if v, ok := r.form[name]; ok {
		if v == "" {
			return nil, false
		}
		return json.RawMessage(v), true
	}
	raw, ok := r.json[name]
	if !ok || string(raw) == "null" {
		return nil, false
	}
	var sv string
	if json.Unmarshal(raw, &sv) == nil {
		if sv == "" {
			return nil, false
		}
		return json.RawMessage(sv), true
	}
	return raw, true
}

func (r *apiRequest) has(name string) bool {
	if _, ok := r.form[name]; ok {
		return true
	}
	_, ok := r.json[name]
	return ok
}

func bearer(r *http.Request) string {
	h := r.Header.Get("Authorization")
	if t, ok := strings.CutPrefix(h, "Bearer "); ok {
		return strings.TrimSpace(t)
	}
	return ""
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func (s *Server) handleAPI(w http.ResponseWriter, r *http.Request) {
	method := strings.TrimPrefix(r.URL.Path, "/api/")
	s.mu.Lock()
	s.calls[method]++
	var limited *rateLimit
	if rl := s.rateLimits[method]; rl != nil && rl.n > 0 {
		rl.n--
		limited = &rateLimit{retryAfter: rl.retryAfter}
	}
	var failed *failure
	if limited == nil {
		if f := s.failures[method]; f != nil && f.n > 0 {
			f.n--
			failed = &failure{code: f.code}
		}
	}
	s.changedLocked()
	s.mu.Unlock()

	if limited != nil {
		// Slack sends Retry-After in whole seconds; slack-go parses it
		// with strconv.ParseInt (misc.go checkStatusCode).
		secs := int64(math.Ceil(limited.retryAfter.Seconds()))
		if secs < 1 {
			secs = 1
		}
		w.Header().Set("Retry-After", strconv.FormatInt(secs, 10))
		writeJSON(w, http.StatusTooManyRequests, map[string]any{"ok": false, "error": "ratelimited"})
		return
	}
	req, err := readAPIRequest(r, method)
	if err != nil {
		writeJSON(w, http.StatusOK, map[string]any{"ok": false, "error": "invalid_form_data"})
		return
	}
	resp, aerr := s.dispatch(req, failed)
	if aerr != nil {
		s.logf("%s -> %s %v", method, aerr.code, aerr.messages)
		body := map[string]any{"ok": false, "error": aerr.code}
		if len(aerr.messages) > 0 {
			body["response_metadata"] = map[string]any{"messages": aerr.messages}
		}
		writeJSON(w, http.StatusOK, body)
		return
	}
	if resp == nil {
		resp = map[string]any{}
	}
	resp["ok"] = true
	writeJSON(w, http.StatusOK, resp)
}

func readAPIRequest(r *http.Request, method string) (*apiRequest, error) {
	req := &apiRequest{method: method, form: map[string]string{}}
	if strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		dec := json.NewDecoder(r.Body)
		var body map[string]json.RawMessage
		if err := dec.Decode(&body); err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("decode json body: %w", err)
		}
		req.json = body
	} else {
		if err := r.ParseForm(); err != nil {
			return nil, fmt.Errorf("parse form: %w", err)
		}
		for k, v := range r.Form {
			if len(v) > 0 {
				req.form[k] = v[0]
			}
		}
	}
	req.token = req.form["token"]
	if req.token == "" {
		req.token = bearer(r)
	}
	return req, nil
}

type apiHandler func(*Server, *apiRequest) (map[string]any, *apiError)

var apiMethods = map[string]apiHandler{
	"auth.test":                    (*Server).authTest,
	"apps.connections.open":        (*Server).appsConnectionsOpen,
	"users.info":                   (*Server).usersInfo,
	"users.lookupByEmail":          (*Server).usersLookupByEmail,
	"conversations.open":           (*Server).conversationsOpen,
	"conversations.list":           (*Server).conversationsList,
	"conversations.info":           (*Server).conversationsInfo,
	"chat.postMessage":             (*Server).chatPostMessage,
	"chat.update":                  (*Server).chatUpdate,
	"chat.postEphemeral":           (*Server).chatPostEphemeral,
	"chat.delete":                  (*Server).chatDelete,
	"views.open":                   (*Server).viewsOpen,
	"views.push":                   (*Server).viewsPush,
	"views.update":                 (*Server).viewsUpdate,
	"views.publish":                (*Server).viewsPublish,
	"files.getUploadURLExternal":   (*Server).filesGetUploadURLExternal,
	"files.completeUploadExternal": (*Server).filesCompleteUploadExternal,
}

func (s *Server) dispatch(req *apiRequest, failed *failure) (map[string]any, *apiError) {
	h, ok := apiMethods[req.method]
	if !ok {
		return nil, fail("unknown_method")
	}
	if req.token == "" {
		return nil, fail("not_authed")
	}
	// The app-level token opens sockets and nothing else; the bot token
	// cannot open sockets (https://api.slack.com/methods/apps.connections.open).
	want := s.opts.BotToken
	if req.method == "apps.connections.open" {
		want = s.opts.AppToken
	}
	if req.token != want {
		return nil, fail("invalid_auth")
	}
	if failed != nil {
		return nil, fail(failed.code)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	resp, aerr := h(s, req)
	s.changedLocked()
	return resp, aerr
}
