package slackemu

import (
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
)

// maxUploadBytes bounds one emulated upload (Slack's own cap is 1 GB; tests
// upload CSV exports of a few KB).
const maxUploadBytes = 64 << 20

// File is a file uploaded through files.getUploadURLExternal, the upload
// URL and files.completeUploadExternal (slack-go UploadFile).
type File struct {
	ID             string
	Name           string
	Title          string
	Length         int // as declared to getUploadURLExternal
	Channel        string
	InitialComment string
	Content        []byte
	Uploaded       bool
	Completed      bool
}

func (s *Server) filesGetUploadURLExternal(req *apiRequest) (map[string]any, *apiError) {
	name := req.str("filename")
	length, err := strconv.Atoi(req.str("length"))
	if name == "" || err != nil || length <= 0 {
		return nil, fail("invalid_arguments")
	}
	id := s.nextIDLocked("F")
	s.files[id] = &File{ID: id, Name: name, Title: name, Length: length}
	s.fileOrder = append(s.fileOrder, id)
	// The upload URL must share scheme and host with the API URL, or
	// slack-go refuses to send the bot token (misc.go ensureURLMayReceiveToken).
	return map[string]any{"upload_url": s.base + "/upload/v1/" + id, "file_id": id}, nil
}

// handleUpload takes the multipart POST of UploadToURL: one part named
// "file", Authorization: Bearer <bot token>. Real Slack answers "OK - <n>".
func (s *Server) handleUpload(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	s.mu.Lock()
	s.calls["upload"]++
	s.mu.Unlock()
	if bearer(r) != s.opts.BotToken {
		http.Error(w, "invalid_auth", http.StatusUnauthorized)
		return
	}
	id := r.URL.Path[strings.LastIndex(r.URL.Path, "/")+1:]
	r.Body = http.MaxBytesReader(w, r.Body, maxUploadBytes)
	part, _, err := r.FormFile("file")
	if err != nil {
		http.Error(w, "missing file part", http.StatusBadRequest)
		return
	}
	defer part.Close()
	content, err := io.ReadAll(part)
	if err != nil {
		http.Error(w, "read file part", http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.files[id]
	if f == nil || f.Completed {
		http.Error(w, "file_not_found", http.StatusNotFound)
		return
	}
	f.Content, f.Uploaded = content, true
	s.changedLocked()
	w.Header().Set("Content-Type", "text/plain")
	_, _ = io.WriteString(w, "OK - "+strconv.Itoa(len(content)))
}

func (s *Server) filesCompleteUploadExternal(req *apiRequest) (map[string]any, *apiError) {
	raw, ok := req.rawJSON("files")
	if !ok {
		return nil, fail("invalid_arguments")
	}
	var summaries []struct {
		ID    string `json:"id"`
		Title string `json:"title"`
	}
	if err := json.Unmarshal(raw, &summaries); err != nil || len(summaries) == 0 {
		return nil, fail("invalid_arguments")
	}
	channel := req.str("channel_id")
	if channel == "" {
		channel, _, _ = strings.Cut(req.str("channels"), ",")
	}
	if channel != "" {
		var ok bool
		if channel, ok = s.resolveChannelLocked(channel); !ok {
			return nil, fail("channel_not_found")
		}
	}
	out := make([]map[string]any, 0, len(summaries))
	var ids []string
	for _, sm := range summaries {
		f := s.files[sm.ID]
		if f == nil || f.Completed {
			return nil, fail("file_not_found")
		}
		if !f.Uploaded {
			return nil, fail("file_upload_not_finished")
		}
	}
	for _, sm := range summaries {
		f := s.files[sm.ID]
		if sm.Title != "" {
			f.Title = sm.Title
		}
		f.Channel, f.InitialComment, f.Completed = channel, req.str("initial_comment"), true
		out = append(out, map[string]any{"id": f.ID, "title": f.Title})
		ids = append(ids, f.ID)
	}
	if channel != "" {
		// Sharing a file posts a message carrying it, with the
		// initial_comment as its text.
		s.postLocked(channel, Message{User: s.opts.BotUserID, BotID: s.opts.BotID, Text: req.str("initial_comment"),
			Files: ids, ThreadTS: req.str("thread_ts")})
	}
	return map[string]any{"files": out}, nil
}

// Files returns copies of every completed upload, in upload order.
func (s *Server) Files() []File {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []File
	for _, id := range s.fileOrder {
		f := *s.files[id]
		if !f.Completed {
			continue
		}
		f.Content = append([]byte(nil), f.Content...)
		out = append(out, f)
	}
	return out
}
