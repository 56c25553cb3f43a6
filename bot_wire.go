package main

import (
	"context"

	"github.com/slack-go/slack"

	"keycard/bot"
	"keycard/handlers"
)

// runBot connects to Slack (Socket Mode with the app token, the Web API with
// the bot token at SLACK_API_URL) and serves until ctx ends.
func runBot(ctx context.Context, cfg Config, svc *handlers.Service, d deps) error {
	api := slack.New(string(cfg.SlackBotToken),
		slack.OptionAPIURL(cfg.SlackAPIURL),
		slack.OptionAppLevelToken(string(cfg.SlackAppToken)))
	b, err := bot.New(bot.Config{API: api, Core: svc, Clock: d.clock, Logger: d.log})
	if err != nil {
		return err
	}
	return b.Run(ctx)
}
