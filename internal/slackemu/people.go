package slackemu

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Value is what a person enters into one input element of a modal. Set
// the field that fits the element type.
type Value struct {
	Text            string   // plain_text_input, number_input, email/url inputs, rich_text_input
	Selected        string   // option value: static_select, external_select, radio_buttons
	SelectedOptions []string // option values: multi_static_select, multi_external_select, checkboxes
	Date            string   // datepicker, YYYY-MM-DD
	Time            string   // timepicker, HH:MM
	DateTime        int64    // datetimepicker, unix seconds
	User            string   // users_select
	Users           []string // multi_users_select
	Conversation    string   // conversations_select
	Channel         string   // channels_select
}

// LocalDateTime is what a Slack client's datetimepicker submits when the
// user picks wallClock ("2006-01-02 15:04"): the picker shows the user's
// own time zone (their users.info tz, UTC when unset) and sends the
// instant as a Unix timestamp in seconds (selected_date_time).
func (s *Server) LocalDateTime(userID, wallClock string) (int64, error) {
	s.mu.Lock()
	u, ok := s.users[userID]
	tz := ""
	if ok {
		tz = u.TZ
	}
	s.mu.Unlock()
	if !ok {
		return 0, fmt.Errorf("slackemu: user %s: %w", userID, ErrNotFound)
	}
	loc := time.UTC
	if tz != "" {
		l, err := time.LoadLocation(tz)
		if err != nil {
			return 0, fmt.Errorf("slackemu: user %s: time zone %q: %w", userID, tz, err)
		}
		loc = l
	}
	t, err := time.ParseInLocation("2006-01-02 15:04", wallClock, loc)
	if err != nil {
		return 0, fmt.Errorf("slackemu: %q is not a date and time like 2026-03-07 02:00: %w", wallClock, err)
	}
	return t.Unix(), nil
}

// Values are a modal's inputs: block_id -> action_id -> Value.
type Values map[string]map[string]Value

// stateKeys maps an input element type to its key in view.state.values
// and the element field holding its initial value (Block Kit reference).
var stateKeys = map[string][2]string{
	"plain_text_input":           {"value", "initial_value"},
	"email_text_input":           {"value", "initial_value"},
	"url_text_input":             {"value", "initial_value"},
	"number_input":               {"value", "initial_value"},
	"rich_text_input":            {"rich_text_value", "initial_value"},
	"static_select":              {"selected_option", "initial_option"},
	"external_select":            {"selected_option", "initial_option"},
	"radio_buttons":              {"selected_option", "initial_option"},
	"multi_static_select":        {"selected_options", "initial_options"},
	"multi_external_select":      {"selected_options", "initial_options"},
	"checkboxes":                 {"selected_options", "initial_options"},
	"datepicker":                 {"selected_date", "initial_date"},
	"timepicker":                 {"selected_time", "initial_time"},
	"datetimepicker":             {"selected_date_time", "initial_date_time"},
	"users_select":               {"selected_user", "initial_user"},
	"multi_users_select":         {"selected_users", "initial_users"},
	"conversations_select":       {"selected_conversation", "initial_conversation"},
	"multi_conversations_select": {"selected_conversations", "initial_conversations"},
	"channels_select":            {"selected_channel", "initial_channel"},
	"multi_channels_select":      {"selected_channels", "initial_channels"},
}

func (s *Server) userRefLocked(id string) (map[string]any, *User, error) {
	u, ok := s.users[id]
	if !ok {
		return nil, nil, fmt.Errorf("slackemu: user %s: %w", id, ErrNotFound)
	}
	return map[string]any{"id": u.ID, "username": u.Name, "name": u.Name, "team_id": s.opts.TeamID}, u, nil
}

func (s *Server) teamRef() map[string]any {
	return map[string]any{"id": s.opts.TeamID, "domain": s.opts.TeamDomain}
}

func (s *Server) channelNameLocked(id string) string {
	if c := s.channels[id]; c != nil && !c.IsIM {
		return c.Name
	}
	return "directmessage"
}

// SlashCommand delivers a slash command run by the user in their DM with
// the bot, with a fresh trigger_id and response_url, and waits for the
// ack. A message in the ack payload is shown as Slack would: ephemeral to
// the user, or posted in the channel for response_type "in_channel".
func (s *Server) SlashCommand(ctx context.Context, userID, command, text string) (Ack, error) {
	return s.SlashCommandIn(ctx, userID, userID, command, text)
}

// SlashCommandIn is SlashCommand run in a given channel (C… id, or a user
// id for the bot's DM with that user).
func (s *Server) SlashCommandIn(ctx context.Context, userID, channel, command, text string) (Ack, error) {
	s.mu.Lock()
	_, u, err := s.userRefLocked(userID)
	if err != nil {
		s.mu.Unlock()
		return Ack{}, err
	}
	ch, ok := s.resolveChannelLocked(channel)
	if !ok {
		s.mu.Unlock()
		return Ack{}, fmt.Errorf("slackemu: channel %s: %w", channel, ErrNotFound)
	}
	payload := map[string]string{
		"token": "legacy", "team_id": s.opts.TeamID, "team_domain": s.opts.TeamDomain,
		"channel_id": ch, "channel_name": s.channelNameLocked(ch), "user_id": u.ID, "user_name": u.Name,
		"command": command, "text": text, "api_app_id": s.opts.AppID, "is_enterprise_install": "false",
		"response_url": s.newResponseURLLocked(responseTarget{Channel: ch, User: userID}),
		"trigger_id":   s.newTriggerLocked(userID),
	}
	env, err := s.newEnvelopeLocked("slash_commands", payload)
	s.mu.Unlock()
	if err != nil {
		return Ack{}, err
	}
	a, err := s.deliver(ctx, env)
	if err != nil {
		return a, err
	}
	return a, s.applyCommandAck(userID, ch, a)
}

func (s *Server) applyCommandAck(userID, ch string, a Ack) error {
	if a.Empty() {
		return nil
	}
	var msg struct {
		Text         string          `json:"text"`
		Blocks       json.RawMessage `json:"blocks"`
		ResponseType string          `json:"response_type"`
	}
	if err := json.Unmarshal(a.Payload, &msg); err != nil {
		return fmt.Errorf("%w: slash command ack is not a message: %v", ErrRejected, err)
	}
	if string(msg.Blocks) == "null" {
		msg.Blocks = nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	blocks, aerr := s.messageContentLocked(msg.Text, msg.Blocks, false)
	if aerr != nil {
		return fmt.Errorf("%w: %s %s", ErrRejected, aerr.code, strings.Join(aerr.messages, "; "))
	}
	m := Message{User: s.opts.BotUserID, BotID: s.opts.BotID, Text: msg.Text, Blocks: blocks}
	if msg.ResponseType == "in_channel" {
		s.postLocked(ch, m)
	} else {
		m.Channel, m.TS = ch, s.nextTSLocked()
		s.ephemerals[userID] = append(s.ephemerals[userID], m)
	}
	s.changedLocked()
	return nil
}

// topModalLocked returns the view if it is the modal on top of the user's
// stack: the only one a person can act on.
func (s *Server) topModalLocked(userID, viewID string) (*view, error) {
	v := s.views[viewID]
	if v == nil {
		return nil, fmt.Errorf("slackemu: view %s: %w", viewID, ErrNotFound)
	}
	stack := s.stacks[userID]
	if v.Type != "modal" || len(stack) == 0 || stack[len(stack)-1] != viewID {
		return nil, fmt.Errorf("%w: view %s is not the top modal of %s", ErrNotAllowed, viewID, userID)
	}
	return v, nil
}

// SubmitView submits the user's top modal with the given input values:
// view.state.values is built from the view's input blocks (initial values
// for inputs not given), the view_submission is delivered, and the ack's
// response_action is applied: "errors" are stored on the view, "update"
// replaces it, "push" stacks a new view, "clear" closes the whole stack,
// and an empty ack closes the submitted view.
func (s *Server) SubmitView(ctx context.Context, userID, viewID string, values Values) (Ack, error) {
	s.mu.Lock()
	user, _, err := s.userRefLocked(userID)
	if err != nil {
		s.mu.Unlock()
		return Ack{}, err
	}
	v, err := s.topModalLocked(userID, viewID)
	if err == nil && nullish(v.Submit) {
		err = fmt.Errorf("%w: view %s has no submit button", ErrNotAllowed, viewID)
	}
	if err != nil {
		s.mu.Unlock()
		return Ack{}, err
	}
	state, err := buildState(v, values)
	if err != nil {
		s.mu.Unlock()
		return Ack{}, err
	}
	v.State, v.Errors = state, nil
	payload := map[string]any{
		"type": "view_submission", "team": s.teamRef(), "user": user, "api_app_id": s.opts.AppID,
		"token": "legacy", "trigger_id": s.newTriggerLocked(userID), "is_enterprise_install": false,
		"enterprise": nil, "view": s.wireView(v), "response_urls": []any{},
	}
	env, err := s.newEnvelopeLocked("interactive", payload)
	s.changedLocked()
	s.mu.Unlock()
	if err != nil {
		return Ack{}, err
	}
	a, err := s.deliver(ctx, env)
	if err != nil {
		return a, err
	}
	return a, s.applyViewAck(userID, viewID, a)
}

func (s *Server) applyViewAck(userID, viewID string, a Ack) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	defer s.changedLocked()
	v := s.views[viewID]
	switch action := a.ResponseAction(); action {
	case "":
		s.popLocked(userID, viewID, false)
	case "errors":
		// Keys must be block_ids of input blocks, else Slack shows the
		// generic "We had some trouble connecting" (slack-go #1013).
		errs := a.Errors()
		inputs := map[string]bool{}
		for _, e := range elementsOf(v.Blocks) {
			if e.BlockType == "input" {
				inputs[e.BlockID] = true
			}
		}
		for k := range errs {
			if !inputs[k] {
				return fmt.Errorf("%w: errors key %q is not the block_id of an input block", ErrRejected, k)
			}
		}
		v.Errors = errs
	case "update", "push":
		vr, blocks, aerr := parseView(a.View(), "modal")
		if aerr != nil {
			return fmt.Errorf("%w: response_action %s: %s %s", ErrRejected, action, aerr.code, strings.Join(aerr.messages, "; "))
		}
		if action == "update" {
			s.applyLocked(v, vr, blocks)
			return nil
		}
		if _, aerr := s.pushLocked(userID, vr, blocks); aerr != nil {
			return fmt.Errorf("%w: response_action push: %s", ErrRejected, aerr.code)
		}
	case "clear":
		delete(s.stacks, userID)
	default:
		return fmt.Errorf("%w: unknown response_action %q", ErrRejected, action)
	}
	return nil
}

// popLocked closes the top view (or the whole stack when clear).
func (s *Server) popLocked(userID, viewID string, clear bool) {
	stack := s.stacks[userID]
	i := slices.Index(stack, viewID)
	switch {
	case i < 0:
	case clear || i == 0:
		delete(s.stacks, userID)
	default:
		s.stacks[userID] = stack[:i:i]
	}
}

// CloseView closes the user's top modal (the X button). When the view has
// notify_on_close a view_closed interaction is delivered and its ack
// returned; otherwise no envelope is sent and Ack is zero.
func (s *Server) CloseView(ctx context.Context, userID, viewID string) (Ack, error) {
	s.mu.Lock()
	user, _, err := s.userRefLocked(userID)
	if err != nil {
		s.mu.Unlock()
		return Ack{}, err
	}
	v, err := s.topModalLocked(userID, viewID)
	if err != nil {
		s.mu.Unlock()
		return Ack{}, err
	}
	s.popLocked(userID, viewID, v.ClearOnClose)
	s.changedLocked()
	if !v.NotifyOnClose {
		s.mu.Unlock()
		return Ack{}, nil
	}
	payload := map[string]any{
		"type": "view_closed", "team": s.teamRef(), "user": user, "api_app_id": s.opts.AppID,
		"token": "legacy", "view": s.wireView(v), "is_cleared": v.ClearOnClose, "is_enterprise_install": false,
	}
	env, err := s.newEnvelopeLocked("interactive", payload)
	s.mu.Unlock()
	if err != nil {
		return Ack{}, err
	}
	return s.deliver(ctx, env)
}

func buttonAction(e element, actionTS string) map[string]any {
	act := map[string]any{
		"type": "button", "action_id": e.actionID(), "block_id": e.BlockID,
		"text": e.El["text"], "action_ts": actionTS,
	}
	for _, k := range []string{"value", "style", "url"} {
		if v, ok := e.El[k]; ok {
			act[k] = v
		}
	}
	return act
}

// ClickButton clicks a button in a stored message (channel is a channel id
// or a user id for the bot's DM with that user). A button that is not in
// the message's current blocks cannot be clicked: ErrNoSuchButton.
func (s *Server) ClickButton(ctx context.Context, userID, channel, ts, actionID string) (Ack, error) {
	s.mu.Lock()
	user, _, err := s.userRefLocked(userID)
	if err != nil {
		s.mu.Unlock()
		return Ack{}, err
	}
	ch, ok := s.resolveChannelLocked(channel)
	var m *Message
	if ok {
		m, _ = s.findMessageLocked(ch, ts)
	}
	if m == nil {
		s.mu.Unlock()
		return Ack{}, fmt.Errorf("slackemu: message %s/%s: %w", channel, ts, ErrNotFound)
	}
	e, ok := findElement(m.Blocks, actionID, "button")
	if !ok {
		s.mu.Unlock()
		return Ack{}, fmt.Errorf("slackemu: %s in message %s: %w", actionID, ts, ErrNoSuchButton)
	}
	payload := map[string]any{
		"type": "block_actions", "user": user, "api_app_id": s.opts.AppID, "token": "legacy",
		"trigger_id": s.newTriggerLocked(userID), "team": s.teamRef(), "enterprise": nil, "is_enterprise_install": false,
		"container": map[string]any{"type": "message", "message_ts": ts, "channel_id": ch, "is_ephemeral": false},
		"channel":   map[string]any{"id": ch, "name": s.channelNameLocked(ch)},
		"message":   s.messageJSON(m), "state": map[string]any{"values": map[string]any{}},
		"response_url": s.newResponseURLLocked(responseTarget{Channel: ch, User: userID, MessageTS: ts}),
		"actions":      []any{buttonAction(e, s.nextTSLocked())},
	}
	env, err := s.newEnvelopeLocked("interactive", payload)
	s.mu.Unlock()
	if err != nil {
		return Ack{}, err
	}
	return s.deliver(ctx, env)
}

// actionableViewLocked returns a view the user can interact with: their
// top modal or their own Home tab.
func (s *Server) actionableViewLocked(userID, viewID string) (*view, error) {
	if v := s.views[viewID]; v != nil && v.Type == "home" {
		if s.homes[userID] != viewID {
			return nil, fmt.Errorf("%w: home view %s belongs to another user", ErrNotAllowed, viewID)
		}
		return v, nil
	}
	return s.topModalLocked(userID, viewID)
}

func (s *Server) viewActionPayloadLocked(user map[string]any, userID string, v *view, action map[string]any) map[string]any {
	return map[string]any{
		"type": "block_actions", "user": user, "api_app_id": s.opts.AppID, "token": "legacy",
		"trigger_id": s.newTriggerLocked(userID), "team": s.teamRef(), "enterprise": nil, "is_enterprise_install": false,
		"container": map[string]any{"type": "view", "view_id": v.ID},
		"view":      s.wireView(v), "actions": []any{action},
	}
}

// ClickViewButton clicks a button in the user's top modal or Home tab.
func (s *Server) ClickViewButton(ctx context.Context, userID, viewID, actionID string) (Ack, error) {
	s.mu.Lock()
	user, _, err := s.userRefLocked(userID)
	var v *view
	if err == nil {
		v, err = s.actionableViewLocked(userID, viewID)
	}
	if err != nil {
		s.mu.Unlock()
		return Ack{}, err
	}
	e, ok := findElement(v.Blocks, actionID, "button")
	if !ok {
		s.mu.Unlock()
		return Ack{}, fmt.Errorf("slackemu: %s in view %s: %w", actionID, viewID, ErrNoSuchButton)
	}
	env, err := s.newEnvelopeLocked("interactive", s.viewActionPayloadLocked(user, userID, v, buttonAction(e, s.nextTSLocked())))
	s.mu.Unlock()
	if err != nil {
		return Ack{}, err
	}
	return s.deliver(ctx, env)
}

var selectTypes = []string{
	"static_select", "external_select", "users_select", "conversations_select", "channels_select",
	"radio_buttons", "multi_static_select", "multi_external_select", "checkboxes", "multi_users_select",
	"multi_conversations_select", "multi_channels_select", "datepicker", "timepicker", "datetimepicker",
}

// SelectOption picks value in a select (or radio/checkbox/date picker) of
// the user's top modal or Home tab and updates the view's state. Like
// Slack, a select inside an input block without dispatch_action only
// changes state (no envelope, zero Ack); elsewhere a block_actions
// interaction is delivered and its ack returned.
func (s *Server) SelectOption(ctx context.Context, userID, viewID, actionID, value string) (Ack, error) {
	s.mu.Lock()
	user, _, err := s.userRefLocked(userID)
	var v *view
	if err == nil {
		v, err = s.actionableViewLocked(userID, viewID)
	}
	if err != nil {
		s.mu.Unlock()
		return Ack{}, err
	}
	e, ok := findElement(v.Blocks, actionID, selectTypes...)
	if !ok {
		s.mu.Unlock()
		return Ack{}, fmt.Errorf("slackemu: select %s in view %s: %w", actionID, viewID, ErrNotFound)
	}
	val := Value{Selected: value, SelectedOptions: []string{value}, User: value, Users: []string{value},
		Conversation: value, Channel: value, Date: value, Time: value}
	if e.typ() == "datetimepicker" {
		// value is the Unix timestamp the picker submits (LocalDateTime
		// turns the wall-clock time a person picks into one).
		n, err := strconv.ParseInt(value, 10, 64)
		if err != nil || n <= 0 {
			s.mu.Unlock()
			return Ack{}, fmt.Errorf("slackemu: datetimepicker %s: %q is not a Unix timestamp", actionID, value)
		}
		val.DateTime = n
	}
	st, err := stateFor(e, val)
	if err != nil {
		s.mu.Unlock()
		return Ack{}, err
	}
	if v.State == nil {
		v.State = map[string]map[string]map[string]any{}
	}
	if v.State[e.BlockID] == nil {
		v.State[e.BlockID] = map[string]map[string]any{}
	}
	v.State[e.BlockID][e.actionID()] = st
	s.changedLocked()
	if e.BlockType == "input" && !e.Dispatch {
		s.mu.Unlock()
		return Ack{}, nil
	}
	action := map[string]any{"action_id": e.actionID(), "block_id": e.BlockID, "action_ts": s.nextTSLocked()}
	for k, x := range st {
		action[k] = x
	}
	env, err := s.newEnvelopeLocked("interactive", s.viewActionPayloadLocked(user, userID, v, action))
	s.mu.Unlock()
	if err != nil {
		return Ack{}, err
	}
	return s.deliver(ctx, env)
}

// Suggest types query into an external_select of the user's top modal or
// Home tab: a block_suggestion is delivered and its ack (the options) is
// checked against the option limits and returned.
func (s *Server) Suggest(ctx context.Context, userID, viewID, actionID, query string) (Ack, error) {
	s.mu.Lock()
	user, _, err := s.userRefLocked(userID)
	var v *view
	if err == nil {
		v, err = s.actionableViewLocked(userID, viewID)
	}
	if err != nil {
		s.mu.Unlock()
		return Ack{}, err
	}
	e, ok := findElement(v.Blocks, actionID, "external_select", "multi_external_select")
	if !ok {
		s.mu.Unlock()
		return Ack{}, fmt.Errorf("slackemu: external select %s in view %s: %w", actionID, viewID, ErrNotFound)
	}
	payload := map[string]any{
		"type": "block_suggestion", "user": user, "team": s.teamRef(), "api_app_id": s.opts.AppID, "token": "legacy",
		"block_id": e.BlockID, "action_id": actionID, "value": query,
		"container": map[string]any{"type": "view", "view_id": v.ID}, "view": s.wireView(v),
	}
	env, err := s.newEnvelopeLocked("interactive", payload)
	s.mu.Unlock()
	if err != nil {
		return Ack{}, err
	}
	a, err := s.deliver(ctx, env)
	if err != nil {
		return a, err
	}
	var body map[string]any
	p := &problems{}
	if decodeJSON(a.Payload, &body) != nil {
		return a, fmt.Errorf("%w: block_suggestion ack is not an object", ErrRejected)
	}
	validateOptions(p, list(body, "options"), "/options", maxSelectOptions, 0)
	groups := list(body, "option_groups")
	if len(groups) > maxSelectOptions {
		p.add("/option_groups", "no more than %d items allowed", maxSelectOptions)
	}
	for i, g := range groups {
		validateOptions(p, list(asMap(g), "options"), fmt.Sprintf("/option_groups/%d/options", i), maxSelectOptions, 1)
	}
	if !p.ok() {
		return a, fmt.Errorf("%w: %s", ErrRejected, strings.Join(p.msgs, "; "))
	}
	return a, nil
}

// OpenHome delivers the events_api app_home_opened event for the user
// (with their published Home view, if any) and waits for the ack. When it
// is not acked in time ErrNoAck is returned and the event is redelivered
// in the background with retry_attempt 1..3 (see Deliveries).
func (s *Server) OpenHome(ctx context.Context, userID string) (Ack, error) {
	s.mu.Lock()
	if _, _, err := s.userRefLocked(userID); err != nil {
		s.mu.Unlock()
		return Ack{}, err
	}
	dm, _ := s.dmLocked(userID)
	ts := s.nextTSLocked()
	event := map[string]any{"type": "app_home_opened", "user": userID, "channel": dm, "tab": "home", "event_ts": ts}
	if home := s.views[s.homes[userID]]; home != nil {
		event["view"] = s.wireView(home)
	}
	eventID := "Ev" + s.nextIDLocked("")
	payload := map[string]any{
		"token": "legacy", "team_id": s.opts.TeamID, "api_app_id": s.opts.AppID, "event": event,
		"type": "event_callback", "event_id": eventID, "event_time": s.opts.Clock().Unix(),
		"authorizations": []any{map[string]any{"enterprise_id": nil, "team_id": s.opts.TeamID,
			"user_id": s.opts.BotUserID, "is_bot": true, "is_enterprise_install": false}},
		"is_ext_shared_channel": false, "event_context": "1-app_home_opened-" + s.opts.TeamID + "-" + dm,
	}
	env, err := s.newEnvelopeLocked("events_api", payload)
	s.mu.Unlock()
	if err != nil {
		return Ack{}, err
	}
	env.eventID = eventID
	return s.deliverEvent(ctx, env)
}

// buildState builds view.state.values for a submission: the view's
// current state (earlier selections), overridden by values, with initial
// values for inputs left alone. A required (non-optional) input left empty
// cannot be submitted in the Slack client: ErrNotAllowed.
func buildState(v *view, values Values) (map[string]map[string]map[string]any, error) {
	state := map[string]map[string]map[string]any{}
	for b, acts := range v.State {
		state[b] = map[string]map[string]any{}
		for a, st := range acts {
			state[b][a] = st
		}
	}
	known := map[string]bool{}
	var inputs []element
	for _, e := range elementsOf(v.Blocks) {
		if e.BlockType == "input" {
			inputs = append(inputs, e)
			known[e.BlockID+"\x00"+e.actionID()] = true
		}
	}
	for b, acts := range values {
		for a := range acts {
			if !known[b+"\x00"+a] {
				return nil, fmt.Errorf("slackemu: view %s has no input %s/%s: %w", v.ID, b, a, ErrNotFound)
			}
		}
	}
	for _, e := range inputs {
		var st map[string]any
		if val, ok := values[e.BlockID][e.actionID()]; ok {
			var err error
			if st, err = stateFor(e, val); err != nil {
				return nil, err
			}
		} else if cur, ok := state[e.BlockID][e.actionID()]; ok {
			st = cur
		} else {
			st = initialState(e)
		}
		if !e.Optional && emptyState(st) {
			return nil, fmt.Errorf("%w: input %s is required", ErrNotAllowed, e.BlockID)
		}
		if state[e.BlockID] == nil {
			state[e.BlockID] = map[string]map[string]any{}
		}
		state[e.BlockID][e.actionID()] = st
	}
	return state, nil
}

func initialState(e element) map[string]any {
	keys, ok := stateKeys[e.typ()]
	if !ok {
		return map[string]any{"type": e.typ()}
	}
	st := map[string]any{"type": e.typ(), keys[0]: nil}
	if init, ok := e.El[keys[1]]; ok {
		st[keys[0]] = init
	} else if strings.HasSuffix(keys[0], "s") && keys[0] != "selected_option" {
		st[keys[0]] = []any{}
	}
	return st
}

func emptyState(st map[string]any) bool {
	keys, ok := stateKeys[str(st, "type")]
	if !ok {
		return false
	}
	switch x := st[keys[0]].(type) {
	case nil:
		return true
	case string:
		return x == ""
	case []any:
		return len(x) == 0
	case []string:
		return len(x) == 0
	case []map[string]any:
		return len(x) == 0
	}
	return false
}

// findOption finds an option by value in options or option_groups.
func findOption(el map[string]any, value string) (map[string]any, bool) {
	opts := list(el, "options")
	for _, g := range list(el, "option_groups") {
		opts = append(opts, list(asMap(g), "options")...)
	}
	for _, o := range opts {
		if om := asMap(o); str(om, "value") == value {
			return om, true
		}
	}
	return nil, false
}

// stateFor is the state.values entry for an element set to val.
func stateFor(e element, val Value) (map[string]any, error) {
	typ := e.typ()
	st := map[string]any{"type": typ}
	option := func(v string) (any, error) {
		if strings.HasSuffix(typ, "external_select") {
			return map[string]any{"text": map[string]any{"type": "plain_text", "text": v, "emoji": true}, "value": v}, nil
		}
		o, ok := findOption(e.El, v)
		if !ok {
			return nil, fmt.Errorf("slackemu: %s %s has no option %q: %w", typ, e.actionID(), v, ErrNotFound)
		}
		return o, nil
	}
	switch typ {
	case "plain_text_input", "email_text_input", "url_text_input", "number_input":
		st["value"] = val.Text
	case "rich_text_input":
		st["rich_text_value"] = map[string]any{"type": "rich_text", "elements": []any{map[string]any{
			"type": "rich_text_section", "elements": []any{map[string]any{"type": "text", "text": val.Text}}}}}
	case "static_select", "external_select", "radio_buttons":
		o, err := option(val.Selected)
		if err != nil {
			return nil, err
		}
		st["selected_option"] = o
	case "multi_static_select", "multi_external_select", "checkboxes":
		sel := []any{}
		for _, v := range val.SelectedOptions {
			o, err := option(v)
			if err != nil {
				return nil, err
			}
			sel = append(sel, o)
		}
		st["selected_options"] = sel
	case "datepicker":
		st["selected_date"] = nilIfEmpty(val.Date)
	case "timepicker":
		st["selected_time"] = nilIfEmpty(val.Time)
		if tz := str(e.El, "timezone"); tz != "" {
			st["timezone"] = tz
		}
	case "datetimepicker":
		if val.DateTime != 0 {
			st["selected_date_time"] = val.DateTime
		} else {
			st["selected_date_time"] = nil
		}
	case "users_select":
		st["selected_user"] = nilIfEmpty(val.User)
	case "multi_users_select":
		st["selected_users"] = append([]string{}, val.Users...)
	case "conversations_select":
		st["selected_conversation"] = nilIfEmpty(val.Conversation)
	case "multi_conversations_select":
		st["selected_conversations"] = append([]string{}, val.SelectedOptions...)
	case "channels_select":
		st["selected_channel"] = nilIfEmpty(val.Channel)
	case "multi_channels_select":
		st["selected_channels"] = append([]string{}, val.SelectedOptions...)
	default:
		return nil, fmt.Errorf("slackemu: cannot set a value on a %s element", typ)
	}
	return st, nil
}

func nilIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// ChangeUser replaces a user's record (their profile email, say) and
// delivers the events_api user_change event Slack sends to apps subscribed
// to it: the whole new user object, cache_ts and event_ts (Events API
// reference; slackevents.UserChangeEvent). It waits for the ack like
// OpenHome.
func (s *Server) ChangeUser(ctx context.Context, u User) (Ack, error) {
	s.mu.Lock()
	cur, ok := s.users[u.ID]
	if !ok {
		s.mu.Unlock()
		return Ack{}, fmt.Errorf("slackemu: no user %s", u.ID)
	}
	*cur = u
	s.changedLocked()
	ts := s.nextTSLocked()
	now := s.opts.Clock().Unix()
	event := map[string]any{"type": "user_change", "user": s.userJSONLocked(cur), "cache_ts": now, "event_ts": ts}
	eventID := "Ev" + s.nextIDLocked("")
	payload := map[string]any{
		"token": "legacy", "team_id": s.opts.TeamID, "api_app_id": s.opts.AppID, "event": event,
		"type": "event_callback", "event_id": eventID, "event_time": now,
		"authorizations": []any{map[string]any{"enterprise_id": nil, "team_id": s.opts.TeamID,
			"user_id": s.opts.BotUserID, "is_bot": true, "is_enterprise_install": false}},
		"is_ext_shared_channel": false,
	}
	env, err := s.newEnvelopeLocked("events_api", payload)
	s.mu.Unlock()
	if err != nil {
		return Ack{}, err
	}
	env.eventID = eventID
	return s.deliverEvent(ctx, env)
}
