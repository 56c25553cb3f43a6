package slackemu

import (
	"encoding/json"
	"net/http"
	"strings"
	"time"
)

// Message is a message as stored in a channel (or an ephemeral message
// shown to one user).
type Message struct {
	Channel  string
	TS       string
	User     string // author: the bot user id for bot messages
	BotID    string
	Text     string
	ThreadTS string
	// Blocks is the stored blocks array (as sent, plus the block_ids and
	// action_ids Slack assigns); nil when the message has no blocks.
	Blocks json.RawMessage
	Files  []string // ids of files shared with the message
	Edited bool
}

// Buttons lists the message's buttons in block order.
func (m Message) Buttons() []Button { return buttonsOf(m.Blocks) }

// PlainText renders the message's blocks as readable text (or the
// top-level text when it has no blocks).
func (m Message) PlainText() string { return renderPlainText(m.Blocks, m.Text) }

func (m Message) clone() Message {
	m.Blocks = append(json.RawMessage(nil), m.Blocks...)
	m.Files = append([]string(nil), m.Files...)
	return m
}

// ResponseURLPost is one POST the bot made to a response_url.
type ResponseURLPost struct {
	URL             string
	Channel         string
	UserID          string
	Text            string
	Blocks          json.RawMessage
	ResponseType    string
	ReplaceOriginal bool
	DeleteOriginal  bool
	Body            json.RawMessage
}

// responseTarget is what a response_url points at: the channel and user of
// a slash command or the message a button was clicked in.
type responseTarget struct {
	Channel   string
	User      string
	MessageTS string
	Issued    time.Time
	Uses      int
}

// response_url limits: "up to 5 times within 30 minutes"
// (https://api.slack.com/interactivity/handling#message_responses).
const (
	maxResponseURLUses = 5
	responseURLTTL     = 30 * time.Minute
)

func (s *Server) messageJSON(m *Message) map[string]any {
	out := map[string]any{"type": "message", "text": m.Text, "ts": m.TS, "team": s.opts.TeamID}
	if m.User != "" {
		out["user"] = m.User
	}
	if m.BotID != "" {
		out["bot_id"] = m.BotID
	}
	if len(m.Blocks) > 0 {
		out["blocks"] = m.Blocks
	}
	if m.ThreadTS != "" {
		out["thread_ts"] = m.ThreadTS
	}
	return out
}

// messageContentLocked validates a message's text and blocks the way
// chat.postMessage does and returns the blocks to store.
func (s *Server) messageContentLocked(text string, raw json.RawMessage, allowEmpty bool) (json.RawMessage, *apiError) {
	p := &problems{}
	blocks := parseBlocks(raw, "/blocks", p)
	if p.ok() {
		validateBlocks(p, blocks, "/blocks", surfaceMessage)
	}
	if !p.ok() {
		return nil, fail("invalid_blocks", p.msgs...)
	}
	// chat.postMessage: "text ... truncated past 40,000 characters";
	// the API answers msg_too_long.
	if runes(text) > maxMessageText {
		return nil, fail("msg_too_long")
	}
	if text == "" && len(blocks) == 0 && !allowEmpty {
		return nil, fail("no_text")
	}
	if raw == nil {
		return nil, nil
	}
	return s.normalizeBlocksLocked(blocks), nil
}

func (s *Server) postLocked(channelID string, m Message) *Message {
	m.Channel = channelID
	m.TS = s.nextTSLocked()
	stored := m
	s.messages[channelID] = append(s.messages[channelID], &stored)
	return &stored
}

func (s *Server) findMessageLocked(channelID, ts string) (*Message, int) {
	for i, m := range s.messages[channelID] {
		if m.TS == ts {
			return m, i
		}
	}
	return nil, -1
}

func (s *Server) chatPostMessage(req *apiRequest) (map[string]any, *apiError) {
	ch, ok := s.resolveChannelLocked(req.str("channel"))
	if !ok {
		return nil, fail("channel_not_found")
	}
	raw, _ := req.rawJSON("blocks")
	_, hasAttachments := req.rawJSON("attachments")
	text := req.str("text")
	blocks, aerr := s.messageContentLocked(text, raw, hasAttachments)
	if aerr != nil {
		return nil, aerr
	}
	m := s.postLocked(ch, Message{User: s.opts.BotUserID, BotID: s.opts.BotID, Text: text, Blocks: blocks, ThreadTS: req.str("thread_ts")})
	s.posts = append(s.posts, m.clone())
	s.logf("chat.postMessage %s %s", ch, m.TS)
	return map[string]any{"channel": ch, "ts": m.TS, "message": s.messageJSON(m)}, nil
}

func (s *Server) chatUpdate(req *apiRequest) (map[string]any, *apiError) {
	ch, ok := s.resolveChannelLocked(req.str("channel"))
	if !ok {
		return nil, fail("channel_not_found")
	}
	m, _ := s.findMessageLocked(ch, req.str("ts"))
	if m == nil {
		return nil, fail("message_not_found")
	}
	if m.BotID != s.opts.BotID {
		return nil, fail("cant_update_message")
	}
	text := m.Text
	if req.has("text") {
		text = req.str("text")
	}
	// chat.update: "If you don't include [blocks], the message's previous
	// blocks will be retained. To remove previous blocks, include an empty
	// array."
	raw := m.Blocks
	if req.has("blocks") {
		raw, _ = req.rawJSON("blocks")
		if raw == nil {
			raw = json.RawMessage("[]")
		}
	}
	blocks, aerr := s.messageContentLocked(text, raw, false)
	if aerr != nil {
		return nil, aerr
	}
	m.Text, m.Blocks, m.Edited = text, blocks, true
	return map[string]any{"channel": ch, "ts": m.TS, "text": m.Text, "message": s.messageJSON(m)}, nil
}

func (s *Server) chatPostEphemeral(req *apiRequest) (map[string]any, *apiError) {
	ch, ok := s.resolveChannelLocked(req.str("channel"))
	if !ok {
		return nil, fail("channel_not_found")
	}
	user := req.str("user")
	if _, ok := s.users[user]; !ok {
		return nil, fail("user_not_found")
	}
	raw, _ := req.rawJSON("blocks")
	_, hasAttachments := req.rawJSON("attachments")
	text := req.str("text")
	blocks, aerr := s.messageContentLocked(text, raw, hasAttachments)
	if aerr != nil {
		return nil, aerr
	}
	m := Message{Channel: ch, TS: s.nextTSLocked(), User: s.opts.BotUserID, BotID: s.opts.BotID, Text: text, Blocks: blocks}
	s.ephemerals[user] = append(s.ephemerals[user], m)
	return map[string]any{"message_ts": m.TS}, nil
}

func (s *Server) chatDelete(req *apiRequest) (map[string]any, *apiError) {
	ch, ok := s.resolveChannelLocked(req.str("channel"))
	if !ok {
		return nil, fail("channel_not_found")
	}
	m, i := s.findMessageLocked(ch, req.str("ts"))
	if m == nil {
		return nil, fail("message_not_found")
	}
	if m.BotID != s.opts.BotID {
		return nil, fail("cant_delete_message")
	}
	s.messages[ch] = append(s.messages[ch][:i:i], s.messages[ch][i+1:]...)
	return map[string]any{"channel": ch, "ts": m.TS}, nil
}

func (s *Server) newResponseURLLocked(t responseTarget) string {
	t.Issued = s.opts.Clock()
	token := s.nextIDLocked("R")
	s.responseURLs[token] = &t
	return s.base + "/response/" + s.opts.TeamID + "/" + token
}

// handleResponseURL accepts the JSON message slack-go's
// MsgOptionResponseURL / MsgOptionReplaceOriginal / MsgOptionDeleteOriginal
// send (chat.go responseURLSender).
func (s *Server) handleResponseURL(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	token := r.URL.Path[strings.LastIndex(r.URL.Path, "/")+1:]
	var body json.RawMessage
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]any{"ok": false, "error": "invalid_payload"})
		return
	}
	var msg struct {
		Text            string          `json:"text"`
		Blocks          json.RawMessage `json:"blocks"`
		ResponseType    string          `json:"response_type"`
		ReplaceOriginal bool            `json:"replace_original"`
		DeleteOriginal  bool            `json:"delete_original"`
		ThreadTS        string          `json:"thread_ts"`
	}
	if err := json.Unmarshal(body, &msg); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]any{"ok": false, "error": "invalid_payload"})
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.responseURLs[token]
	switch {
	case t == nil:
		writeJSON(w, http.StatusNotFound, map[string]any{"ok": false, "error": "invalid_url"})
		return
	case t.Uses >= maxResponseURLUses:
		writeJSON(w, http.StatusNotFound, map[string]any{"ok": false, "error": "used_url"})
		return
	case s.opts.Clock().Sub(t.Issued) > responseURLTTL:
		writeJSON(w, http.StatusNotFound, map[string]any{"ok": false, "error": "expired_url"})
		return
	}
	if string(msg.Blocks) == "null" {
		msg.Blocks = nil
	}
	var blocks json.RawMessage
	if !msg.DeleteOriginal {
		var aerr *apiError
		blocks, aerr = s.messageContentLocked(msg.Text, msg.Blocks, false)
		if aerr != nil {
			body := map[string]any{"ok": false, "error": aerr.code}
			if len(aerr.messages) > 0 {
				body["response_metadata"] = map[string]any{"messages": aerr.messages}
			}
			writeJSON(w, http.StatusOK, body)
			return
		}
	}
	t.Uses++
	s.responsePosts = append(s.responsePosts, ResponseURLPost{
		URL: s.base + r.URL.Path, Channel: t.Channel, UserID: t.User, Text: msg.Text, Blocks: blocks,
		ResponseType: msg.ResponseType, ReplaceOriginal: msg.ReplaceOriginal, DeleteOriginal: msg.DeleteOriginal, Body: body,
	})
	switch {
	case msg.DeleteOriginal && t.MessageTS != "":
		if m, i := s.findMessageLocked(t.Channel, t.MessageTS); m != nil {
			s.messages[t.Channel] = append(s.messages[t.Channel][:i:i], s.messages[t.Channel][i+1:]...)
		}
	case msg.ReplaceOriginal && t.MessageTS != "":
		if m, _ := s.findMessageLocked(t.Channel, t.MessageTS); m != nil {
			m.Text, m.Blocks, m.Edited = msg.Text, blocks, true
		}
	case msg.ResponseType == "in_channel":
		s.postLocked(t.Channel, Message{User: s.opts.BotUserID, BotID: s.opts.BotID, Text: msg.Text, Blocks: blocks, ThreadTS: msg.ThreadTS})
	default:
		s.ephemerals[t.User] = append(s.ephemerals[t.User], Message{Channel: t.Channel, TS: s.nextTSLocked(),
			User: s.opts.BotUserID, BotID: s.opts.BotID, Text: msg.Text, Blocks: blocks})
	}
	s.changedLocked()
	writeJSON(w, http.StatusOK, map[string]any{"ok": true})
}

// Messages returns copies of the messages in a channel, oldest first. A
// user id stands for the bot's DM with that user.
func (s *Server) Messages(channel string) []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := channel
	if dm, ok := s.dmByUser[channel]; ok {
		id = dm
	}
	out := make([]Message, 0, len(s.messages[id]))
	for _, m := range s.messages[id] {
		out = append(out, m.clone())
	}
	return out
}

// Posts returns every message the bot posted with chat.postMessage, in
// order, as it was when posted (later chat.update and chat.delete calls do
// not change it): the log to count how often a person was messaged.
func (s *Server) Posts() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Message, len(s.posts))
	for i, m := range s.posts {
		out[i] = m.clone()
	}
	return out
}

// Message returns a copy of one stored message.
func (s *Server) Message(channel, ts string) (Message, bool) {
	for _, m := range s.Messages(channel) {
		if m.TS == ts {
			return m, true
		}
	}
	return Message{}, false
}

// Ephemerals returns copies of the ephemeral messages shown to a user.
func (s *Server) Ephemerals(userID string) []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Message, 0, len(s.ephemerals[userID]))
	for _, m := range s.ephemerals[userID] {
		out = append(out, m.clone())
	}
	return out
}

// ResponseURLPosts returns copies of every response_url post, in order.
func (s *Server) ResponseURLPosts() []ResponseURLPost {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]ResponseURLPost, len(s.responsePosts))
	copy(out, s.responsePosts)
	return out
}
