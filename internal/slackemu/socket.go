package slackemu

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// maxEventRetries: Slack redelivers an unacknowledged Events API envelope
// up to 3 times, with retry_attempt 1..3 and the same event_id
// (https://api.slack.com/apis/events-api#retries; notes/slack.md §5).
const maxEventRetries = 3

// Ack is a Socket Mode acknowledgement: {"envelope_id":…,"payload":…}.
type Ack struct {
	EnvelopeID string
	Payload    json.RawMessage
}

func (a Ack) field(name string, v any) {
	if len(a.Payload) == 0 {
		return
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(a.Payload, &m) != nil {
		return
	}
	if raw, ok := m[name]; ok {
		_ = json.Unmarshal(raw, v)
	}
}

// Empty reports whether the ack carried no payload (or an empty object).
func (a Ack) Empty() bool {
	var m map[string]json.RawMessage
	return len(a.Payload) == 0 || string(a.Payload) == "null" || (json.Unmarshal(a.Payload, &m) == nil && len(m) == 0)
}

// ResponseAction is the payload's response_action ("errors", "update",
// "push", "clear") or "".
func (a Ack) ResponseAction() string {
	var s string
	a.field("response_action", &s)
	return s
}

// Errors is the payload's errors map (response_action "errors").
func (a Ack) Errors() map[string]string {
	var m map[string]string
	a.field("errors", &m)
	return m
}

// Text is the payload's text (a slash command's reply message).
func (a Ack) Text() string {
	var s string
	a.field("text", &s)
	return s
}

// View is the payload's view (response_action "update" or "push").
func (a Ack) View() json.RawMessage {
	var raw json.RawMessage
	a.field("view", &raw)
	return raw
}

// Delivery records one envelope sent over the socket and its ack.
type Delivery struct {
	EnvelopeID   string
	Type         string // events_api, slash_commands, interactive
	RetryAttempt int
	RetryReason  string
	EventID      string // events_api only
	// Conn is the Connection.ID of the socket the envelope was sent on.
	Conn       int
	Payload    json.RawMessage
	Acked      bool
	AckPayload json.RawMessage
}

type envelope struct {
	EnvelopeID             string          `json:"envelope_id"`
	Type                   string          `json:"type"`
	AcceptsResponsePayload bool            `json:"accepts_response_payload"`
	RetryAttempt           int             `json:"retry_attempt"`
	RetryReason            string          `json:"retry_reason"`
	Payload                json.RawMessage `json:"payload"`
	eventID                string
}

// Connection is one Socket Mode connection the app opened: an app may hold
// several at once (up to 10 per app token; every replica of a bot holds
// its own), and Slack spreads envelopes over them (notes/slack.md §5).
type Connection struct {
	ID     int // 1, 2, ... in the order the sockets were accepted
	Opened time.Time
	Closed time.Time // zero while open
}

type conn struct {
	info *Connection
	ws   *websocket.Conn
	send chan []byte
	done chan struct{}
	once sync.Once
}

// shut closes the socket abruptly (no close frame), which slack-go treats
// like any read error: reconnect.
func (c *conn) shut() {
	c.once.Do(func() {
		close(c.done)
		_ = c.ws.Close()
	})
}

func (c *conn) enqueue(b []byte) bool {
	select {
	case c.send <- b:
		return true
	case <-c.done:
		return false
	}
}

// goLocked runs f on the server's WaitGroup unless the server is closing;
// call with mu held so Close's Wait never races an Add.
func (s *Server) goLocked(f func()) bool {
	if s.ctx.Err() != nil {
		return false
	}
	s.wg.Go(f)
	return true
}

func (s *Server) appsConnectionsOpen(*apiRequest) (map[string]any, *apiError) {
	ticket := s.nextIDLocked("t")
	s.tickets[ticket] = true
	url := fmt.Sprintf("ws://%s/link/?ticket=%s&app_id=%s", s.ln.Addr().String(), ticket, s.opts.AppID)
	return map[string]any{"url": url}, nil
}

func (s *Server) handleSocket(w http.ResponseWriter, r *http.Request) {
	ticket := r.URL.Query().Get("ticket")
	s.mu.Lock()
	ok := s.tickets[ticket]
	delete(s.tickets, ticket) // tickets are single use
	s.mu.Unlock()
	if !ok {
		http.Error(w, "invalid ticket", http.StatusUnauthorized)
		return
	}
	ws, err := s.upgrader.Upgrade(w, r, nil)
	if err != nil {
		s.logf("upgrade: %v", err)
		return
	}
	c := &conn{ws: ws, send: make(chan []byte, 256), done: make(chan struct{})}
	s.mu.Lock()
	c.info = &Connection{ID: len(s.connLog) + 1, Opened: s.opts.Clock()}
	s.connLog = append(s.connLog, c.info)
	if !s.goLocked(func() { s.writeLoop(c) }) {
		s.mu.Unlock()
		_ = ws.Close()
		return
	}
	s.goLocked(func() { s.readLoop(c) })
	// hello is queued before the connection is visible to deliver, so it
	// is always the first frame, as on Slack.
	hello, _ := json.Marshal(map[string]any{
		"type": "hello", "num_connections": len(s.conns) + 1,
		"debug_info":      map[string]any{"host": "slackemu", "build_number": 1, "approximate_connection_time": 18060},
		"connection_info": map[string]any{"app_id": s.opts.AppID},
	})
	c.send <- hello // fresh buffered channel: never blocks
	s.conns = append(s.conns, c)
	s.accepted++
	s.changedLocked()
	s.mu.Unlock()
	s.logf("socket connected")
}

// writeLoop is the connection's only writer (gorilla allows one concurrent
// writer): queued frames and a PING every PingInterval, since slack-go
// reconnects when it hears no ping for 30 s.
func (s *Server) writeLoop(c *conn) {
	t := time.NewTicker(s.opts.PingInterval)
	defer t.Stop()
	for {
		select {
		case <-c.done:
			return
		case b := <-c.send:
			if err := c.ws.WriteMessage(websocket.TextMessage, b); err != nil {
				c.shut()
				return
			}
		case <-t.C:
			if err := c.ws.WriteControl(websocket.PingMessage, []byte("slackemu"), time.Time{}); err != nil {
				c.shut()
				return
			}
		}
	}
}

func (s *Server) readLoop(c *conn) {
	defer func() {
		c.shut()
		s.mu.Lock()
		for i, x := range s.conns {
			if x == c {
				s.conns = append(s.conns[:i:i], s.conns[i+1:]...)
				break
			}
		}
		c.info.Closed = s.opts.Clock()
		s.changedLocked()
		s.mu.Unlock()
		s.logf("socket closed")
	}()
	for {
		_, data, err := c.ws.ReadMessage()
		if err != nil {
			return
		}
		var resp struct {
			EnvelopeID string          `json:"envelope_id"`
			Payload    json.RawMessage `json:"payload"`
		}
		if json.Unmarshal(data, &resp) != nil || resp.EnvelopeID == "" {
			s.logf("ignoring frame %q", data)
			continue
		}
		s.resolveAck(resp.EnvelopeID, resp.Payload)
	}
}

func (s *Server) resolveAck(envelopeID string, payload json.RawMessage) {
	s.mu.Lock()
	ch := s.pending[envelopeID]
	delete(s.pending, envelopeID)
	if ch != nil {
		for i := len(s.deliveries) - 1; i >= 0; i-- {
			if d := &s.deliveries[i]; d.EnvelopeID == envelopeID && !d.Acked {
				d.Acked, d.AckPayload = true, payload
				break
			}
		}
	}
	s.changedLocked()
	s.mu.Unlock()
	if ch != nil {
		ch <- Ack{EnvelopeID: envelopeID, Payload: payload}
	}
}

func (s *Server) newEnvelopeLocked(typ string, payload any) (*envelope, error) {
	if m, ok := payload.(map[string]any); ok && s.envTeam != "" {
		if _, ok := m["team_id"]; ok {
			m["team_id"] = s.envTeam
		}
		if _, ok := m["team"]; ok {
			m["team"] = map[string]any{"id": s.envTeam, "domain": "elsewhere"}
		}
	}
	raw, err := json.Marshal(payload)
	if err != nil {
		return nil, fmt.Errorf("slackemu: encode %s payload: %w", typ, err)
	}
	id := s.nextIDLocked("")
	return &envelope{
		EnvelopeID:             fmt.Sprintf("%s-%04x-4%03x-a%03x-%012x", id, s.seq%0xffff, s.seq%0xfff, s.seq%0xfff, s.seq),
		Type:                   typ,
		AcceptsResponsePayload: typ != "events_api",
		Payload:                raw,
	}, nil
}

// SetEnvelopeTeam makes the envelopes delivered from now on carry team id
// (team_id, or team.id in interactions) instead of the app's own workspace:
// what an app sees from another organisation over Slack Connect. "" restores
// the default.
func (s *Server) SetEnvelopeTeam(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.envTeam = id
}

// deliver sends an envelope over one connection (round robin, as Slack
// spreads envelopes over an app's sockets) and waits for its ack.
func (s *Server) deliver(ctx context.Context, env *envelope) (Ack, error) {
	a, _, err := s.deliverAvoiding(ctx, env, 0)
	return a, err
}

// deliverAvoiding is deliver on a connection other than the one whose ID is
// avoid, when another is open: Slack redelivers an envelope the app did not
// acknowledge on one socket to another of its sockets, so one dead or stuck
// replica does not swallow every retry. It returns the connection used.
func (s *Server) deliverAvoiding(ctx context.Context, env *envelope, avoid int) (Ack, int, error) {
	frame, err := json.Marshal(env)
	if err != nil {
		return Ack{}, 0, fmt.Errorf("slackemu: encode envelope: %w", err)
	}
	s.mu.Lock()
	if len(s.conns) == 0 {
		s.mu.Unlock()
		return Ack{}, 0, ErrNotConnected
	}
	s.rr = (s.rr + 1) % len(s.conns)
	if len(s.conns) > 1 && s.conns[s.rr].info.ID == avoid {
		s.rr = (s.rr + 1) % len(s.conns)
	}
	c := s.conns[s.rr]
	ch := make(chan Ack, 1)
	s.pending[env.EnvelopeID] = ch
	s.envelopes[env.EnvelopeID] = env
	s.deliveries = append(s.deliveries, Delivery{
		EnvelopeID: env.EnvelopeID, Type: env.Type, RetryAttempt: env.RetryAttempt,
		RetryReason: env.RetryReason, EventID: env.eventID, Conn: c.info.ID, Payload: env.Payload,
	})
	s.changedLocked()
	s.mu.Unlock()
	used := c.info.ID
	drop := func() {
		s.mu.Lock()
		if s.pending[env.EnvelopeID] == ch {
			delete(s.pending, env.EnvelopeID)
		}
		s.mu.Unlock()
	}
	if !c.enqueue(frame) {
		drop()
		return Ack{}, used, ErrNotConnected
	}
	timer := time.NewTimer(s.opts.AckTimeout)
	defer timer.Stop()
	select {
	case a := <-ch:
		return a, used, nil
	case <-timer.C:
		drop()
		s.logf("envelope %s (%s) not acked", env.EnvelopeID, env.Type)
		return Ack{EnvelopeID: env.EnvelopeID}, used, ErrNoAck
	case <-ctx.Done():
		drop()
		return Ack{EnvelopeID: env.EnvelopeID}, used, fmt.Errorf("slackemu: waiting for ack: %w", ctx.Err())
	case <-s.ctx.Done():
		drop()
		return Ack{EnvelopeID: env.EnvelopeID}, used, ErrNotConnected
	}
}

// deliverEvent sends an events_api envelope; when it is not acked (or no
// socket is open) it is redelivered in the background, on a new envelope
// with retry_attempt+1, retry_reason "timeout" and the same event_id, up
// to maxEventRetries times, waiting for a connection when there is none.
// Each retry goes to another connection than the attempt before it when the
// app holds more than one.
func (s *Server) deliverEvent(ctx context.Context, env *envelope) (Ack, error) {
	a, used, err := s.deliverAvoiding(ctx, env, 0)
	if errors.Is(err, ErrNoAck) || errors.Is(err, ErrNotConnected) {
		s.mu.Lock()
		s.goLocked(func() { s.retryEvent(env, used) })
		s.mu.Unlock()
	}
	return a, err
}

func (s *Server) retryEvent(first *envelope, last int) {
	for attempt := first.RetryAttempt + 1; attempt <= maxEventRetries; attempt++ {
		if s.WaitConnected(s.ctx) != nil {
			return
		}
		s.mu.Lock()
		env, err := s.newEnvelopeLocked("events_api", nil)
		s.mu.Unlock()
		if err != nil {
			return
		}
		env.Payload, env.eventID = first.Payload, first.eventID
		env.RetryAttempt, env.RetryReason = attempt, "timeout"
		if _, last, err = s.deliverAvoiding(s.ctx, env, last); err == nil || s.ctx.Err() != nil {
			return
		}
	}
}

// Redeliver sends an earlier envelope again, unchanged (same envelope_id),
// as a duplicate for idempotency tests, and waits for its ack.
func (s *Server) Redeliver(ctx context.Context, envelopeID string) (Ack, error) {
	s.mu.Lock()
	env := s.envelopes[envelopeID]
	s.mu.Unlock()
	if env == nil {
		return Ack{}, fmt.Errorf("slackemu: envelope %s: %w", envelopeID, ErrNotFound)
	}
	return s.deliver(ctx, env)
}

// Deliveries returns every envelope sent so far, in order, with its ack.
func (s *Server) Deliveries() []Delivery {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Delivery, len(s.deliveries))
	copy(out, s.deliveries)
	return out
}

// Disconnect sends {"type":"disconnect","reason":reason} on every socket
// (reasons Slack uses: "warning", "refresh_requested", "link_disabled");
// slack-go closes the socket and reconnects.
func (s *Server) Disconnect(reason string) {
	msg, _ := json.Marshal(map[string]any{"type": "disconnect", "reason": reason, "debug_info": map[string]any{"host": "slackemu"}})
	s.mu.Lock()
	conns := append([]*conn(nil), s.conns...)
	s.mu.Unlock()
	for _, c := range conns {
		c.enqueue(msg)
	}
}

// DropConnections closes every socket abruptly, without a close frame.
func (s *Server) DropConnections() {
	s.mu.Lock()
	conns := append([]*conn(nil), s.conns...)
	s.mu.Unlock()
	for _, c := range conns {
		c.shut()
	}
}

// Connected is the number of open Socket Mode connections.
func (s *Server) Connected() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// Connections lists every socket accepted so far, oldest first, with when
// it opened and closed.
func (s *Server) Connections() []Connection {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Connection, len(s.connLog))
	for i, c := range s.connLog {
		out[i] = *c
	}
	return out
}

// Connects is the number of sockets accepted since the server started; a
// reconnect shows as an increase.
func (s *Server) Connects() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.accepted
}

// WaitConnected waits until at least one socket is open.
func (s *Server) WaitConnected(ctx context.Context) error {
	return s.WaitFor(ctx, func(s *Server) bool { return s.Connected() > 0 })
}
