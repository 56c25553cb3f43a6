package slackemu

import (
	"encoding/json"
	"fmt"
	"maps"
	"time"
)

// maxModalStack is Slack's limit of views in one modal stack
// (https://api.slack.com/surfaces/modals#lifecycle: "up to 3 views").
const maxModalStack = 3

// view is a stored modal or Home tab.
type view struct {
	ID             string
	Type           string
	User           string
	Title          json.RawMessage
	Submit         json.RawMessage
	Close          json.RawMessage
	Blocks         json.RawMessage
	PrivateMeta    string
	CallbackID     string
	ExternalID     string
	ClearOnClose   bool
	NotifyOnClose  bool
	SubmitDisabled bool
	Hash           string
	RootViewID     string
	PreviousViewID string
	// State is view.state.values: block_id -> action_id -> element state.
	State  map[string]map[string]map[string]any
	Errors map[string]string
}

// viewRequest is the view object of views.open/push/update/publish and of
// response_action update/push (slack-go ModalViewRequest, HomeTabViewRequest).
type viewRequest struct {
	Type            string          `json:"type"`
	Title           json.RawMessage `json:"title"`
	Submit          json.RawMessage `json:"submit"`
	Close           json.RawMessage `json:"close"`
	Blocks          json.RawMessage `json:"blocks"`
	PrivateMetadata string          `json:"private_metadata"`
	CallbackID      string          `json:"callback_id"`
	ExternalID      string          `json:"external_id"`
	ClearOnClose    bool            `json:"clear_on_close"`
	NotifyOnClose   bool            `json:"notify_on_close"`
	SubmitDisabled  bool            `json:"submit_disabled"`
}

type trigger struct {
	User   string
	Issued time.Time
	Used   bool
}

func nullish(raw json.RawMessage) bool { return len(raw) == 0 || string(raw) == "null" }

// parseView validates a view object against Slack's surface limits. The
// returned apiError uses "invalid_arguments" (or "view_too_large"), as the
// views.* methods do.
func parseView(raw json.RawMessage, wantType string) (*viewRequest, []map[string]any, *apiError) {
	if nullish(raw) {
		return nil, nil, fail("invalid_arguments", "[ERROR] missing required field: view [json-pointer:/view]")
	}
	if len(raw) > maxViewBytes {
		return nil, nil, fail("view_too_large")
	}
	var vr viewRequest
	if err := json.Unmarshal(raw, &vr); err != nil {
		return nil, nil, fail("invalid_arguments", "[ERROR] view must be an object [json-pointer:/view]")
	}
	p := &problems{}
	if vr.Type != wantType {
		p.add("/view/type", "must be %q", wantType)
	}
	where := surfaceHome
	if wantType == "modal" {
		where = surfaceModal
		if nullish(vr.Title) {
			p.add("/view/title", "missing required field: title")
		}
	}
	for _, f := range []struct {
		name string
		raw  json.RawMessage
	}{{"title", vr.Title}, {"submit", vr.Submit}, {"close", vr.Close}} {
		if nullish(f.raw) {
			continue
		}
		var t any
		if decodeJSON(f.raw, &t) != nil {
			p.add("/view/"+f.name, "must be a text object")
			continue
		}
		validateText(p, t, "/view/"+f.name, maxViewTitle, true)
	}
	if runes(vr.PrivateMetadata) > maxPrivateMetadata {
		p.add("/view/private_metadata", "must be less than %d characters", maxPrivateMetadata+1)
	}
	if runes(vr.CallbackID) > maxID {
		p.add("/view/callback_id", "must be less than %d characters", maxID+1)
	}
	if runes(vr.ExternalID) > maxID {
		p.add("/view/external_id", "must be less than %d characters", maxID+1)
	}
	blocks := parseBlocks(vr.Blocks, "/view/blocks", p)
	validateBlocks(p, blocks, "/view/blocks", where)
	if where == surfaceModal && nullish(vr.Submit) {
		for i, b := range blocks {
			if str(b, "type") == "input" {
				p.add(fmt.Sprintf("/view/blocks/%d", i), "a view with input blocks must have a submit button")
				break
			}
		}
	}
	if !p.ok() {
		return nil, nil, fail("invalid_arguments", p.msgs...)
	}
	return &vr, blocks, nil
}

// applyLocked replaces a stored view's content with a validated request,
// keeping its id and stack links, issuing a new hash and keeping the state
// of inputs whose block_id and action_id survive (as Slack does).
func (s *Server) applyLocked(v *view, vr *viewRequest, blocks []map[string]any) {
	v.Type = vr.Type
	v.Title, v.Submit, v.Close = vr.Title, vr.Submit, vr.Close
	v.Blocks = s.normalizeBlocksLocked(blocks)
	v.PrivateMeta, v.CallbackID, v.ExternalID = vr.PrivateMetadata, vr.CallbackID, vr.ExternalID
	v.ClearOnClose, v.NotifyOnClose, v.SubmitDisabled = vr.ClearOnClose, vr.NotifyOnClose, vr.SubmitDisabled
	v.Hash = fmt.Sprintf("%d.%s", s.opts.Clock().Unix(), s.nextIDLocked("h"))
	v.Errors = nil
	kept := map[string]map[string]map[string]any{}
	for _, e := range elementsOf(v.Blocks) {
		if st, ok := v.State[e.BlockID][e.actionID()]; ok && str(st, "type") == e.typ() {
			if kept[e.BlockID] == nil {
				kept[e.BlockID] = map[string]map[string]any{}
			}
			kept[e.BlockID][e.actionID()] = st
		}
	}
	v.State = kept
}

func (s *Server) newViewLocked(user string, vr *viewRequest, blocks []map[string]any) *view {
	v := &view{ID: s.nextIDLocked("V"), User: user}
	s.applyLocked(v, vr, blocks)
	v.RootViewID = v.ID
	s.views[v.ID] = v
	return v
}

func (s *Server) wireView(v *view) map[string]any {
	var prev any
	if v.PreviousViewID != "" {
		prev = v.PreviousViewID
	}
	// Copy every level: the payload is encoded after the lock is released,
	// while a later SelectOption may write the view's state.
	state := map[string]any{}
	for b, acts := range v.State {
		c := make(map[string]map[string]any, len(acts))
		for a, st := range acts {
			cs := make(map[string]any, len(st))
			for k, x := range st {
				cs[k] = x
			}
			c[a] = cs
		}
		state[b] = c
	}
	return map[string]any{
		"id": v.ID, "team_id": s.opts.TeamID, "type": v.Type,
		"title": rawOrNil(v.Title), "submit": rawOrNil(v.Submit), "close": rawOrNil(v.Close),
		"blocks": v.Blocks, "private_metadata": v.PrivateMeta, "callback_id": v.CallbackID,
		"state": map[string]any{"values": state}, "hash": v.Hash,
		"clear_on_close": v.ClearOnClose, "notify_on_close": v.NotifyOnClose, "submit_disabled": v.SubmitDisabled,
		"root_view_id": v.RootViewID, "previous_view_id": prev, "app_id": s.opts.AppID,
		"external_id": v.ExternalID, "bot_id": s.opts.BotID, "app_installed_team_id": s.opts.TeamID,
	}
}

func rawOrNil(raw json.RawMessage) any {
	if nullish(raw) {
		return nil
	}
	return raw
}

func (s *Server) newTriggerLocked(user string) string {
	id := s.nextIDLocked("")
	s.triggers[id] = &trigger{User: user, Issued: s.opts.Clock()}
	return fmt.Sprintf("%s.%d.%x", id, s.opts.Clock().Unix(), s.seq*7919)
}

// exchangeTriggerLocked spends a trigger_id: single use, valid TriggerTTL
// (views.open errors invalid_trigger_id, exchanged_trigger_id,
// expired_trigger_id).
func (s *Server) exchangeTriggerLocked(id string) (string, *apiError) {
	key := id
	if i := indexByte(id, '.'); i >= 0 {
		key = id[:i]
	}
	t := s.triggers[key]
	switch {
	case id == "" || t == nil:
		return "", fail("invalid_trigger_id")
	case t.Used:
		return "", fail("exchanged_trigger_id")
	case s.opts.Clock().Sub(t.Issued) > s.opts.TriggerTTL:
		return "", fail("expired_trigger_id")
	}
	t.Used = true
	return t.User, nil
}

func indexByte(s string, b byte) int {
	for i := 0; i < len(s); i++ {
		if s[i] == b {
			return i
		}
	}
	return -1
}

func (s *Server) viewsOpen(req *apiRequest) (map[string]any, *apiError) {
	raw, _ := req.rawJSON("view")
	vr, blocks, aerr := parseView(raw, "modal")
	if aerr != nil {
		return nil, aerr
	}
	user, aerr := s.exchangeTriggerLocked(req.str("trigger_id"))
	if aerr != nil {
		return nil, aerr
	}
	v := s.newViewLocked(user, vr, blocks)
	s.stacks[user] = []string{v.ID}
	s.logf("views.open %s for %s", v.ID, user)
	return map[string]any{"view": s.wireView(v)}, nil
}

func (s *Server) viewsPush(req *apiRequest) (map[string]any, *apiError) {
	raw, _ := req.rawJSON("view")
	vr, blocks, aerr := parseView(raw, "modal")
	if aerr != nil {
		return nil, aerr
	}
	user, aerr := s.exchangeTriggerLocked(req.str("trigger_id"))
	if aerr != nil {
		return nil, aerr
	}
	v, aerr := s.pushLocked(user, vr, blocks)
	if aerr != nil {
		return nil, aerr
	}
	return map[string]any{"view": s.wireView(v)}, nil
}

func (s *Server) pushLocked(user string, vr *viewRequest, blocks []map[string]any) (*view, *apiError) {
	stack := s.stacks[user]
	if len(stack) == 0 {
		return nil, fail("not_found")
	}
	if len(stack) >= maxModalStack {
		return nil, fail("push_limit_reached")
	}
	v := s.newViewLocked(user, vr, blocks)
	v.RootViewID = stack[0]
	v.PreviousViewID = stack[len(stack)-1]
	s.stacks[user] = append(stack, v.ID)
	return v, nil
}

func (s *Server) viewsUpdate(req *apiRequest) (map[string]any, *apiError) {
	var v *view
	if id := req.str("view_id"); id != "" {
		v = s.views[id]
	} else if ext := req.str("external_id"); ext != "" {
		for _, cand := range s.views {
			if cand.ExternalID == ext {
				v = cand
				break
			}
		}
	} else {
		return nil, fail("invalid_arguments", "[ERROR] view_id or external_id is required [json-pointer:/view_id]")
	}
	if v == nil {
		return nil, fail("not_found")
	}
	if h := req.str("hash"); h != "" && h != v.Hash {
		return nil, fail("hash_conflict")
	}
	raw, _ := req.rawJSON("view")
	vr, blocks, aerr := parseView(raw, v.Type)
	if aerr != nil {
		return nil, aerr
	}
	s.applyLocked(v, vr, blocks)
	return map[string]any{"view": s.wireView(v)}, nil
}

func (s *Server) viewsPublish(req *apiRequest) (map[string]any, *apiError) {
	user := req.str("user_id")
	if _, ok := s.users[user]; !ok {
		return nil, fail("user_not_found")
	}
	raw, _ := req.rawJSON("view")
	vr, blocks, aerr := parseView(raw, "home")
	if aerr != nil {
		return nil, aerr
	}
	v := s.views[s.homes[user]]
	if v != nil {
		if h := req.str("hash"); h != "" && h != v.Hash {
			return nil, fail("hash_conflict")
		}
		s.applyLocked(v, vr, blocks)
	} else {
		v = s.newViewLocked(user, vr, blocks)
		s.homes[user] = v.ID
	}
	return map[string]any{"view": s.wireView(v)}, nil
}

// View is a copy of a stored modal or Home tab.
type View struct {
	ID              string
	Type            string // "modal" or "home"
	UserID          string
	CallbackID      string
	ExternalID      string
	PrivateMetadata string
	Hash            string
	RootViewID      string
	PreviousViewID  string
	Title           string
	Submit          string
	Close           string
	NotifyOnClose   bool
	ClearOnClose    bool
	Blocks          json.RawMessage
	// State is view.state.values as last built (block_id -> action_id ->
	// element state JSON).
	State map[string]map[string]json.RawMessage
	// Errors are the input errors of the last response_action "errors".
	Errors map[string]string
}

// Buttons lists the view's buttons in block order.
func (v View) Buttons() []Button { return buttonsOf(v.Blocks) }

// PlainText renders the title and blocks as readable text.
func (v View) PlainText() string {
	body := renderPlainText(v.Blocks, "")
	if v.Title == "" {
		return body
	}
	return v.Title + "\n" + body
}

func (s *Server) exportViewLocked(v *view) View {
	text := func(raw json.RawMessage) string {
		var t struct {
			Text string `json:"text"`
		}
		_ = json.Unmarshal(raw, &t)
		return t.Text
	}
	state := map[string]map[string]json.RawMessage{}
	for b, acts := range v.State {
		state[b] = map[string]json.RawMessage{}
		for a, st := range acts {
			raw, _ := json.Marshal(st)
			state[b][a] = raw
		}
	}
	return View{
		ID: v.ID, Type: v.Type, UserID: v.User, CallbackID: v.CallbackID, ExternalID: v.ExternalID,
		PrivateMetadata: v.PrivateMeta, Hash: v.Hash, RootViewID: v.RootViewID, PreviousViewID: v.PreviousViewID,
		Title: text(v.Title), Submit: text(v.Submit), Close: text(v.Close),
		NotifyOnClose: v.NotifyOnClose, ClearOnClose: v.ClearOnClose,
		Blocks: append(json.RawMessage(nil), v.Blocks...), State: state, Errors: maps.Clone(v.Errors),
	}
}

// OpenViews returns the user's modal stack, bottom first.
func (s *Server) OpenViews(userID string) []View {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []View
	for _, id := range s.stacks[userID] {
		out = append(out, s.exportViewLocked(s.views[id]))
	}
	return out
}

// View returns a copy of a modal or Home view by id, open or not.
func (s *Server) View(viewID string) (View, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.views[viewID]
	if !ok {
		return View{}, false
	}
	return s.exportViewLocked(v), true
}

// Home returns the user's published Home tab, or nil.
func (s *Server) Home(userID string) *View {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.views[s.homes[userID]]
	if !ok {
		return nil
	}
	out := s.exportViewLocked(v)
	return &out
}
