package main

import (
	"github.com/slack-go/slack"

	"keycard/bot"
	"keycard/handlers"
)

// newBot builds the Slack edge: Socket Mode with the app token, the Web API
// with the bot token at SLACK_API_URL.
func newBot(cfg Config, svc *handlers.Service, d deps) (*bot.Bot, error) {
	api := slack.New(string(cfg.SlackBotToken),
		slack.OptionAPIURL(cfg.SlackAPIURL),
		slack.OptionAppLevelToken(string(cfg.SlackAppToken)))
	return bot.New(bot.Config{API: api, Core: svc, Reviews: svc, Alerts: svc, Clock: d.clock, Logger: d.log})
}
