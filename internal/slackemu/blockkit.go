package slackemu

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Block Kit limits, from Slack's Block Kit reference
// (https://api.slack.com/reference/block-kit/blocks, .../block-elements,
// .../composition-objects, .../surfaces/views) and notes/slack.md §5.
const (
	maxMessageBlocks   = 50
	maxViewBlocks      = 100
	maxMessageText     = 40000
	maxViewTitle       = 24 // title, submit, close
	maxPrivateMetadata = 3000
	maxID              = 255 // block_id, action_id, callback_id, external_id
	maxSectionText     = 3000
	maxSectionFields   = 10
	maxFieldText       = 2000
	maxHeaderText      = 150
	maxButtonText      = 75
	maxButtonValue     = 2000
	maxURL             = 3000
	maxOptionText      = 75
	maxOptionValue     = 150
	maxOptionDesc      = 75
	maxSelectOptions   = 100
	maxChoiceOptions   = 10 // checkboxes, radio_buttons
	maxOverflowOptions = 5
	minOverflowOptions = 2
	maxActionElements  = 25
	maxContextElements = 10
	maxPlaceholder     = 150
	maxInputLabel      = 2000
	maxInputHint       = 2000
	maxTextInputLength = 3000
	maxViewBytes       = 250 * 1024 // view_too_large
)

var blockTypes = map[string]bool{
	"section": true, "divider": true, "image": true, "actions": true, "context": true, "input": true,
	"header": true, "file": true, "rich_text": true, "video": true, "markdown": true, "call": true,
	"table": true, "context_actions": true,
}

var inputElementTypes = map[string]bool{
	"checkboxes": true, "datepicker": true, "datetimepicker": true, "email_text_input": true,
	"multi_static_select": true, "multi_external_select": true, "multi_users_select": true,
	"multi_conversations_select": true, "multi_channels_select": true, "number_input": true,
	"plain_text_input": true, "radio_buttons": true, "rich_text_input": true, "static_select": true,
	"external_select": true, "users_select": true, "conversations_select": true, "channels_select": true,
	"timepicker": true, "url_text_input": true, "file_input": true,
}

var interactiveElementTypes = map[string]bool{"button": true, "overflow": true, "workflow_button": true}

// problems collects validation failures in Slack's response_metadata
// message format: "[ERROR] <what> [json-pointer:/blocks/0/text]".
type problems struct{ msgs []string }

func (p *problems) add(ptr, format string, args ...any) {
	p.msgs = append(p.msgs, fmt.Sprintf("[ERROR] %s [json-pointer:%s]", fmt.Sprintf(format, args...), ptr))
}

func (p *problems) ok() bool { return len(p.msgs) == 0 }

func runes(s string) int { return utf8.RuneCountInString(s) }

// decodeJSON decodes with json.Number so re-encoding keeps numbers exact.
func decodeJSON(raw []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	return dec.Decode(v)
}

func str(m map[string]any, k string) string {
	s, _ := m[k].(string)
	return s
}

func obj(m map[string]any, k string) map[string]any {
	o, _ := m[k].(map[string]any)
	return o
}

func list(m map[string]any, k string) []any {
	l, _ := m[k].([]any)
	return l
}

// parseBlocks decodes a blocks array; ptr is its JSON pointer ("/blocks").
func parseBlocks(raw json.RawMessage, ptr string, p *problems) []map[string]any {
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	var arr []any
	if err := decodeJSON(raw, &arr); err != nil {
		p.add(ptr, "must be an array of blocks")
		return nil
	}
	out := make([]map[string]any, 0, len(arr))
	for i, b := range arr {
		m, ok := b.(map[string]any)
		if !ok {
			p.add(fmt.Sprintf("%s/%d", ptr, i), "must be an object")
			continue
		}
		out = append(out, m)
	}
	return out
}

// surface is where blocks are shown; limits differ per surface.
type surface int

const (
	surfaceMessage surface = iota
	surfaceModal
	surfaceHome
)

func validateBlocks(p *problems, blocks []map[string]any, ptr string, where surface) {
	limit := maxMessageBlocks
	if where != surfaceMessage {
		limit = maxViewBlocks
	}
	if len(blocks) > limit {
		p.add(ptr, "no more than %d items allowed", limit)
	}
	seen := map[string]bool{}
	for i, b := range blocks {
		bptr := fmt.Sprintf("%s/%d", ptr, i)
		if id, ok := b["block_id"]; ok {
			sid, isStr := id.(string)
			switch {
			case !isStr || sid == "":
				p.add(bptr+"/block_id", "must be a non-empty string")
			case runes(sid) > maxID:
				p.add(bptr+"/block_id", "must be less than %d characters", maxID+1)
			case seen[sid]:
				p.add(bptr+"/block_id", "duplicate block_id %q", sid)
			}
			seen[sid] = true
		}
		validateBlock(p, b, bptr, where)
	}
}

func validateBlock(p *problems, b map[string]any, ptr string, where surface) {
	typ := str(b, "type")
	if !blockTypes[typ] {
		p.add(ptr+"/type", "unsupported block type %q", typ)
		return
	}
	switch typ {
	case "section":
		t, hasText := b["text"]
		fields := list(b, "fields")
		if !hasText && len(fields) == 0 {
			p.add(ptr, "must provide text or fields")
		}
		if hasText {
			validateText(p, t, ptr+"/text", maxSectionText, false)
		}
		if len(fields) > maxSectionFields {
			p.add(ptr+"/fields", "no more than %d items allowed", maxSectionFields)
		}
		for i, f := range fields {
			validateText(p, f, fmt.Sprintf("%s/fields/%d", ptr, i), maxFieldText, false)
		}
		if acc := obj(b, "accessory"); acc != nil {
			validateElement(p, acc, ptr+"/accessory")
		}
	case "header":
		validateText(p, b["text"], ptr+"/text", maxHeaderText, true)
	case "actions":
		els := list(b, "elements")
		if len(els) == 0 {
			p.add(ptr+"/elements", "must provide at least 1 element")
		}
		if len(els) > maxActionElements {
			p.add(ptr+"/elements", "no more than %d items allowed", maxActionElements)
		}
		validateElements(p, els, ptr+"/elements")
	case "context":
		els := list(b, "elements")
		if len(els) == 0 {
			p.add(ptr+"/elements", "must provide at least 1 element")
		}
		if len(els) > maxContextElements {
			p.add(ptr+"/elements", "no more than %d items allowed", maxContextElements)
		}
		for i, e := range els {
			eptr := fmt.Sprintf("%s/elements/%d", ptr, i)
			em, _ := e.(map[string]any)
			if em == nil {
				p.add(eptr, "must be an object")
				continue
			}
			if t := str(em, "type"); t == "plain_text" || t == "mrkdwn" {
				validateText(p, em, eptr, maxSectionText, false)
			} else if t != "image" {
				p.add(eptr+"/type", "context elements must be text or image, not %q", t)
			}
		}
	case "input":
		validateText(p, b["label"], ptr+"/label", maxInputLabel, true)
		if h, ok := b["hint"]; ok {
			validateText(p, h, ptr+"/hint", maxInputHint, true)
		}
		el := obj(b, "element")
		if el == nil {
			p.add(ptr+"/element", "must provide an element")
			return
		}
		if !inputElementTypes[str(el, "type")] {
			p.add(ptr+"/element/type", "%q is not an input element", str(el, "type"))
			return
		}
		validateElement(p, el, ptr+"/element")
	case "image":
		if str(b, "alt_text") == "" {
			p.add(ptr+"/alt_text", "must provide alt_text")
		}
	}
	_ = where
}

func validateElements(p *problems, els []any, ptr string) {
	actionIDs := map[string]bool{}
	for i, e := range els {
		eptr := fmt.Sprintf("%s/%d", ptr, i)
		em, _ := e.(map[string]any)
		if em == nil {
			p.add(eptr, "must be an object")
			continue
		}
		if id := str(em, "action_id"); id != "" {
			if actionIDs[id] {
				p.add(eptr+"/action_id", "duplicate action_id %q in block", id)
			}
			actionIDs[id] = true
		}
		validateElement(p, em, eptr)
	}
}

func validateElement(p *problems, e map[string]any, ptr string) {
	typ := str(e, "type")
	if !inputElementTypes[typ] && !interactiveElementTypes[typ] && typ != "image" {
		p.add(ptr+"/type", "unsupported element type %q", typ)
		return
	}
	if id, ok := e["action_id"]; ok {
		if sid, _ := id.(string); sid == "" || runes(sid) > maxID {
			p.add(ptr+"/action_id", "must be a string of 1 to %d characters", maxID)
		}
	}
	if ph, ok := e["placeholder"]; ok {
		validateText(p, ph, ptr+"/placeholder", maxPlaceholder, true)
	}
	switch typ {
	case "button":
		validateText(p, e["text"], ptr+"/text", maxButtonText, true)
		if v, ok := e["value"].(string); ok && runes(v) > maxButtonValue {
			p.add(ptr+"/value", "must be less than %d characters", maxButtonValue+1)
		}
		if u, ok := e["url"].(string); ok && runes(u) > maxURL {
			p.add(ptr+"/url", "must be less than %d characters", maxURL+1)
		}
		if st, ok := e["style"].(string); ok && st != "primary" && st != "danger" {
			p.add(ptr+"/style", "must be one of primary, danger")
		}
	case "static_select", "multi_static_select":
		opts, groups := list(e, "options"), list(e, "option_groups")
		if len(opts) == 0 && len(groups) == 0 {
			p.add(ptr, "must provide options or option_groups")
		}
		validateOptions(p, opts, ptr+"/options", maxSelectOptions, 0)
		if len(groups) > maxSelectOptions {
			p.add(ptr+"/option_groups", "no more than %d items allowed", maxSelectOptions)
		}
		for i, g := range groups {
			gm, _ := g.(map[string]any)
			gptr := fmt.Sprintf("%s/option_groups/%d", ptr, i)
			if gm == nil {
				p.add(gptr, "must be an object")
				continue
			}
			validateText(p, gm["label"], gptr+"/label", maxOptionText, true)
			validateOptions(p, list(gm, "options"), gptr+"/options", maxSelectOptions, 1)
		}
	case "checkboxes", "radio_buttons":
		validateOptions(p, list(e, "options"), ptr+"/options", maxChoiceOptions, 1)
	case "overflow":
		validateOptions(p, list(e, "options"), ptr+"/options", maxOverflowOptions, minOverflowOptions)
	case "datetimepicker":
		// Block Kit reference: initial_date_time is a UNIX timestamp in
		// seconds, "in the format of 10 digits".
		if v, ok := e["initial_date_time"]; ok {
			n, isNum := v.(json.Number)
			x, err := n.Int64()
			if !isNum || err != nil || x < 1e9 || x >= 1e10 {
				p.add(ptr+"/initial_date_time", "must be a UNIX timestamp in seconds (10 digits)")
			}
		}
	case "plain_text_input":
		if n, ok := e["max_length"].(json.Number); ok {
			if v, err := n.Int64(); err != nil || v > maxTextInputLength || v < 1 {
				p.add(ptr+"/max_length", "must be between 1 and %d", maxTextInputLength)
			}
		}
	}
}

func validateOptions(p *problems, opts []any, ptr string, maxN, minN int) {
	if len(opts) > maxN {
		p.add(ptr, "no more than %d items allowed", maxN)
	}
	if len(opts) < minN {
		p.add(ptr, "must provide at least %d items", minN)
	}
	for i, o := range opts {
		validateOption(p, o, fmt.Sprintf("%s/%d", ptr, i))
	}
}

func validateOption(p *problems, o any, ptr string) {
	om, _ := o.(map[string]any)
	if om == nil {
		p.add(ptr, "must be an object")
		return
	}
	validateText(p, om["text"], ptr+"/text", maxOptionText, false)
	v, ok := om["value"].(string)
	if !ok || v == "" {
		p.add(ptr+"/value", "must provide a value")
	} else if runes(v) > maxOptionValue {
		p.add(ptr+"/value", "must be less than %d characters", maxOptionValue+1)
	}
	if d, ok := om["description"]; ok {
		validateText(p, d, ptr+"/description", maxOptionDesc, false)
	}
}

// validateText checks a text composition object: type plain_text (or
// mrkdwn when allowed), non-empty text of at most maxLen characters.
func validateText(p *problems, v any, ptr string, maxLen int, plainOnly bool) {
	m, _ := v.(map[string]any)
	if m == nil {
		p.add(ptr, "must be a text object")
		return
	}
	typ := str(m, "type")
	switch {
	case typ == "plain_text":
	case typ == "mrkdwn" && !plainOnly:
	case typ == "mrkdwn":
		p.add(ptr+"/type", "must be plain_text")
	default:
		p.add(ptr+"/type", "must be plain_text or mrkdwn")
	}
	t, ok := m["text"].(string)
	if !ok || t == "" {
		p.add(ptr+"/text", "must be more than 0 characters")
		return
	}
	if runes(t) > maxLen {
		p.add(ptr+"/text", "must be less than %d characters", maxLen+1)
	}
}

// normalizeBlocks gives every block a block_id and every interactive
// element an action_id, as Slack does when it stores blocks, so that
// state.values and block_actions can always name them.
func (s *Server) normalizeBlocksLocked(blocks []map[string]any) json.RawMessage {
	if blocks == nil {
		return json.RawMessage("[]")
	}
	for _, b := range blocks {
		if _, ok := b["block_id"]; !ok {
			b["block_id"] = s.nextIDLocked("b")
		}
		name := func(e map[string]any) {
			if e == nil {
				return
			}
			if _, ok := e["action_id"]; !ok && (inputElementTypes[str(e, "type")] || interactiveElementTypes[str(e, "type")]) {
				e["action_id"] = s.nextIDLocked("a")
			}
		}
		name(obj(b, "element"))
		name(obj(b, "accessory"))
		for _, e := range list(b, "elements") {
			em, _ := e.(map[string]any)
			name(em)
		}
	}
	raw, err := json.Marshal(blocks)
	if err != nil {
		return json.RawMessage("[]")
	}
	return raw
}

// element is one interactive element found in stored blocks.
type element struct {
	BlockID   string
	BlockType string
	Dispatch  bool // input block with dispatch_action
	Optional  bool
	El        map[string]any
}

func (e element) actionID() string { return str(e.El, "action_id") }
func (e element) typ() string      { return str(e.El, "type") }

// elementsOf lists the interactive elements of stored blocks in order.
func elementsOf(raw json.RawMessage) []element {
	var blocks []map[string]any
	if decodeJSON(raw, &blocks) != nil {
		return nil
	}
	var out []element
	for _, b := range blocks {
		bid, bt := str(b, "block_id"), str(b, "type")
		if el := obj(b, "element"); el != nil {
			d, _ := b["dispatch_action"].(bool)
			opt, _ := b["optional"].(bool)
			out = append(out, element{BlockID: bid, BlockType: bt, Dispatch: d, Optional: opt, El: el})
		}
		if acc := obj(b, "accessory"); acc != nil {
			out = append(out, element{BlockID: bid, BlockType: bt, El: acc})
		}
		if bt == "actions" {
			for _, e := range list(b, "elements") {
				if em, _ := e.(map[string]any); em != nil {
					out = append(out, element{BlockID: bid, BlockType: bt, El: em})
				}
			}
		}
	}
	return out
}

func findElement(raw json.RawMessage, actionID string, types ...string) (element, bool) {
	for _, e := range elementsOf(raw) {
		if e.actionID() != actionID {
			continue
		}
		if len(types) == 0 {
			return e, true
		}
		for _, t := range types {
			if e.typ() == t {
				return e, true
			}
		}
	}
	return element{}, false
}

// Button is a clickable button found in stored blocks.
type Button struct {
	BlockID  string
	ActionID string
	Text     string
	Value    string
	Style    string
	URL      string
}

func buttonsOf(raw json.RawMessage) []Button {
	var out []Button
	for _, e := range elementsOf(raw) {
		if e.typ() != "button" {
			continue
		}
		out = append(out, Button{
			BlockID: e.BlockID, ActionID: e.actionID(), Text: str(obj(e.El, "text"), "text"),
			Value: str(e.El, "value"), Style: str(e.El, "style"), URL: str(e.El, "url"),
		})
	}
	return out
}

// renderPlainText renders blocks as readable lines: headers and section
// text as written, buttons as [Label], inputs as "Label: <type>".
func renderPlainText(raw json.RawMessage, fallback string) string {
	var blocks []map[string]any
	if decodeJSON(raw, &blocks) != nil || len(blocks) == 0 {
		return fallback
	}
	var lines []string
	textOf := func(v any) string { return str(asMap(v), "text") }
	elementLabel := func(e map[string]any) string {
		switch str(e, "type") {
		case "button":
			return "[" + textOf(e["text"]) + "]"
		case "image":
			return str(e, "alt_text")
		case "plain_text", "mrkdwn":
			return str(e, "text")
		default:
			if ph := textOf(e["placeholder"]); ph != "" {
				return "<" + str(e, "type") + ": " + ph + ">"
			}
			return "<" + str(e, "type") + ">"
		}
	}
	for _, b := range blocks {
		switch str(b, "type") {
		case "header":
			lines = append(lines, textOf(b["text"]))
		case "section":
			if t := textOf(b["text"]); t != "" {
				lines = append(lines, t)
			}
			for _, f := range list(b, "fields") {
				lines = append(lines, textOf(f))
			}
			if acc := obj(b, "accessory"); acc != nil {
				lines = append(lines, elementLabel(acc))
			}
		case "context", "actions":
			var parts []string
			for _, e := range list(b, "elements") {
				parts = append(parts, elementLabel(asMap(e)))
			}
			lines = append(lines, strings.Join(parts, " "))
		case "divider":
			lines = append(lines, "---")
		case "input":
			lines = append(lines, textOf(b["label"])+": "+elementLabel(obj(b, "element")))
		case "image":
			lines = append(lines, str(b, "alt_text"))
		case "rich_text", "markdown":
			var sb strings.Builder
			collectText(b, &sb)
			lines = append(lines, sb.String())
		}
	}
	return strings.Join(lines, "\n")
}

func asMap(v any) map[string]any {
	m, _ := v.(map[string]any)
	return m
}

func collectText(v any, sb *strings.Builder) {
	switch t := v.(type) {
	case map[string]any:
		if s, ok := t["text"].(string); ok {
			sb.WriteString(s)
		}
		collectText(t["elements"], sb)
	case []any:
		for _, c := range t {
			collectText(c, sb)
		}
	}
}
