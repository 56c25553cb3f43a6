package slackemu

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// User is a person (or bot) in the emulated workspace.
type User struct {
	ID       string
	Name     string // handle, e.g. "alice"
	RealName string
	Email    string
	TZ       string // IANA zone, e.g. "Europe/Berlin"; empty means UTC
	IsBot    bool
	Deleted  bool
	// Guest is a single- or multi-channel guest (is_restricted /
	// is_ultra_restricted); Stranger is a Slack Connect user from another
	// organisation (is_stranger).
	Guest, Stranger bool
}

type channel struct {
	ID      string
	Name    string
	IsIM    bool
	IsMPIM  bool
	User    string // the other party of a DM
	Members []string
	Created int64
}

// AddUser adds or replaces a user.
func (s *Server) AddUser(u User) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.users[u.ID]; !ok {
		s.userOrder = append(s.userOrder, u.ID)
	}
	cp := u
	s.users[u.ID] = &cp
	s.changedLocked()
}

// User returns a copy of the user with that id.
func (s *Server) User(id string) (User, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, ok := s.users[id]
	if !ok {
		return User{}, false
	}
	return *u, true
}

// AddChannel creates a public channel and returns its C… id.
func (s *Server) AddChannel(name string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := s.nextIDLocked("C")
	s.channels[id] = &channel{ID: id, Name: name, Created: s.opts.Clock().Unix()}
	s.chanOrder = append(s.chanOrder, id)
	s.changedLocked()
	return id
}

// DMChannel returns the stable D… id of the bot's DM with a user.
func (s *Server) DMChannel(userID string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	id, _ := s.dmLocked(userID)
	return id
}

// dmLocked returns the user's DM id, creating it on first use; already
// reports whether it existed.
func (s *Server) dmLocked(userID string) (id string, already bool) {
	if id, ok := s.dmByUser[userID]; ok {
		return id, true
	}
	id = s.nextIDLocked("D")
	s.dmByUser[userID] = id
	s.channels[id] = &channel{ID: id, IsIM: true, User: userID, Created: s.opts.Clock().Unix()}
	s.chanOrder = append(s.chanOrder, id)
	return id, false
}

// resolveChannelLocked maps a channel argument (C…, D…, G… or a user id,
// which chat.postMessage accepts as "that user's DM") to a channel id.
func (s *Server) resolveChannelLocked(arg string) (string, bool) {
	if _, ok := s.channels[arg]; ok {
		return arg, true
	}
	if _, ok := s.users[arg]; ok {
		id, _ := s.dmLocked(arg)
		return id, true
	}
	return "", false
}

func (s *Server) userJSONLocked(u *User) map[string]any {
	tz := u.TZ
	if tz == "" {
		tz = "UTC"
	}
	label, offset := tz, 0
	if loc, err := time.LoadLocation(tz); err == nil {
		label, offset = s.opts.Clock().In(loc).Zone()
	}
	display := u.Name
	return map[string]any{
		"id":                  u.ID,
		"team_id":             s.opts.TeamID,
		"name":                u.Name,
		"deleted":             u.Deleted,
		"real_name":           u.RealName,
		"tz":                  tz,
		"tz_label":            label,
		"tz_offset":           offset,
		"is_bot":              u.IsBot,
		"is_restricted":       u.Guest,
		"is_ultra_restricted": false,
		"is_stranger":         u.Stranger,
		"is_admin":            false,
		"is_owner":            false,
		"updated":             s.opts.Clock().Unix(),
		"profile": map[string]any{
			"real_name":    u.RealName,
			"display_name": display,
			"email":        u.Email,
			"team":         s.opts.TeamID,
		},
	}
}

func (s *Server) channelJSONLocked(c *channel) map[string]any {
	out := map[string]any{
		"id":          c.ID,
		"created":     c.Created,
		"is_channel":  !c.IsIM && !c.IsMPIM,
		"is_group":    false,
		"is_im":       c.IsIM,
		"is_mpim":     c.IsMPIM,
		"is_private":  c.IsIM || c.IsMPIM,
		"is_archived": false,
		"is_member":   true,
	}
	if c.IsIM {
		out["user"] = c.User
	} else {
		out["name"] = c.Name
		out["name_normalized"] = strings.ToLower(c.Name)
		out["topic"] = map[string]any{"value": "", "creator": "", "last_set": 0}
		out["purpose"] = map[string]any{"value": "", "creator": "", "last_set": 0}
	}
	return out
}

func (s *Server) authTest(*apiRequest) (map[string]any, *apiError) {
	return map[string]any{
		"url":                   fmt.Sprintf("https://%s.slack.com/", s.opts.TeamDomain),
		"team":                  s.opts.TeamDomain,
		"user":                  "keycard",
		"team_id":               s.opts.TeamID,
		"user_id":               s.opts.BotUserID,
		"bot_id":                s.opts.BotID,
		"is_enterprise_install": false,
	}, nil
}

func (s *Server) usersInfo(req *apiRequest) (map[string]any, *apiError) {
	u, ok := s.users[req.str("user")]
	if !ok {
		return nil, fail("user_not_found")
	}
	return map[string]any{"user": s.userJSONLocked(u)}, nil
}

func (s *Server) usersLookupByEmail(req *apiRequest) (map[string]any, *apiError) {
	email := strings.TrimSpace(req.str("email"))
	for _, id := range s.userOrder {
		u := s.users[id]
		if email != "" && strings.EqualFold(u.Email, email) {
			return map[string]any{"user": s.userJSONLocked(u)}, nil
		}
	}
	return nil, fail("users_not_found")
}

func (s *Server) conversationsOpen(req *apiRequest) (map[string]any, *apiError) {
	if ch := req.str("channel"); ch != "" {
		c, ok := s.channels[ch]
		if !ok {
			return nil, fail("channel_not_found")
		}
		return map[string]any{"no_op": true, "already_open": true, "channel": s.channelJSONLocked(c)}, nil
	}
	var users []string
	for _, u := range strings.Split(req.str("users"), ",") {
		if u = strings.TrimSpace(u); u != "" {
			users = append(users, u)
		}
	}
	if len(users) == 0 {
		return nil, fail("users_list_not_supplied")
	}
	for _, u := range users {
		if _, ok := s.users[u]; !ok {
			return nil, fail("user_not_found")
		}
	}
	var id string
	var already bool
	if len(users) == 1 {
		id, already = s.dmLocked(users[0])
	} else {
		id, already = s.mpimLocked(users)
	}
	ch := map[string]any{"id": id}
	if req.str("return_im") == "true" {
		ch = s.channelJSONLocked(s.channels[id])
	}
	return map[string]any{"no_op": already, "already_open": already, "channel": ch}, nil
}

func (s *Server) mpimLocked(users []string) (string, bool) {
	sorted := append([]string(nil), users...)
	sort.Strings(sorted)
	name := "mpdm-" + strings.Join(sorted, "--")
	for _, id := range s.chanOrder {
		if c := s.channels[id]; c.IsMPIM && c.Name == name {
			return id, true
		}
	}
	id := s.nextIDLocked("G")
	s.channels[id] = &channel{ID: id, Name: name, IsMPIM: true, Members: sorted, Created: s.opts.Clock().Unix()}
	s.chanOrder = append(s.chanOrder, id)
	return id, false
}

func (s *Server) conversationsList(req *apiRequest) (map[string]any, *apiError) {
	types := req.str("types")
	if types == "" {
		types = "public_channel"
	}
	want := map[string]bool{}
	for _, t := range strings.Split(types, ",") {
		want[strings.TrimSpace(t)] = true
	}
	limit := 100
	if l := req.str("limit"); l != "" {
		if _, err := fmt.Sscan(l, &limit); err != nil || limit <= 0 {
			limit = 100
		}
	}
	if limit > 1000 { // conversations.list caps limit at 1000
		limit = 1000
	}
	var all []*channel
	for _, id := range s.chanOrder {
		c := s.channels[id]
		switch {
		case c.IsIM && want["im"], c.IsMPIM && want["mpim"], !c.IsIM && !c.IsMPIM && want["public_channel"]:
			all = append(all, c)
		}
	}
	start := 0
	if cur := req.str("cursor"); cur != "" {
		if _, err := fmt.Sscanf(cur, "dGVhbTpD%d", &start); err != nil || start < 0 || start > len(all) {
			return nil, fail("invalid_cursor")
		}
	}
	end := min(start+limit, len(all))
	page := make([]map[string]any, 0, end-start)
	for _, c := range all[start:end] {
		page = append(page, s.channelJSONLocked(c))
	}
	next := ""
	if end < len(all) {
		next = fmt.Sprintf("dGVhbTpD%d", end)
	}
	return map[string]any{"channels": page, "response_metadata": map[string]any{"next_cursor": next}}, nil
}

func (s *Server) conversationsInfo(req *apiRequest) (map[string]any, *apiError) {
	c, ok := s.channels[req.str("channel")]
	if !ok {
		return nil, fail("channel_not_found")
	}
	return map[string]any{"channel": s.channelJSONLocked(c)}, nil
}
