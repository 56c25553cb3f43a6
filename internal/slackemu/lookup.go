package slackemu

import "strings"

// ChannelID returns the id of the channel named name (with or without #).
func (s *Server) ChannelID(name string) (string, bool) {
	name = strings.TrimPrefix(name, "#")
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, id := range s.chanOrder {
		if c := s.channels[id]; c != nil && c.Name == name {
			return id, true
		}
	}
	return "", false
}
