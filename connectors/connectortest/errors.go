package connectortest

import (
	"errors"

	"keycard/access"
)

func asError(err error, target **access.Error) bool { return errors.As(err, target) }
