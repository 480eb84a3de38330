package anonymize

import (
	"strings"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/mileusna/useragent"
)

// Device classes.
const (
	DeviceDesktop = "desktop"
	DeviceMobile  = "mobile"
	DeviceTablet  = "tablet"
	DeviceBot     = "bot"
	DeviceOther   = "other"
)

// FamilyOther is the browser or OS family of anything not on the fixed list.
const FamilyOther = "Other"

// maxCachedUA is the longest user agent kept in the cache; longer ones are
// classified on every hit (they are rare and mostly abusive).
const maxCachedUA = 512

// uaInfo is what the statistics keep of a user agent. Its strings are
// constants, never parts of the user agent.
type uaInfo struct {
	browser, os, device string
	bot                 bool // crawler, script, monitoring probe
	probe               bool // configured health-check user agent
}

// uaClassifier classifies user agents behind a bounded LRU cache. Safe for
// concurrent use.
type uaClassifier struct {
	cache  *lru.Cache[string, uaInfo]
	probes []string // lower-case substrings
}

func newUAClassifier(size int, probes []string) (*uaClassifier, error) {
	c, err := lru.New[string, uaInfo](size)
	if err != nil {
		return nil, err
	}
	lower := make([]string, len(probes))
	for i, p := range probes {
		lower[i] = strings.ToLower(p)
	}
	return &uaClassifier{cache: c, probes: lower}, nil
}

// classify returns the classification of ua and whether it came from the
// cache.
func (u *uaClassifier) classify(ua string) (uaInfo, bool) {
	if len(ua) > maxCachedUA {
		return u.parse(ua), false
	}
	if info, ok := u.cache.Get(ua); ok {
		return info, true
	}
	info := u.parse(ua)
	// Clone: ua may alias a Kafka message that must not be kept alive.
	u.cache.Add(strings.Clone(ua), info)
	return info, false
}

// botWords are lower-case substrings that only automated clients put in a
// user agent, a safety net behind the library's own list.
var botWords = []string{
	"bot", "crawl", "spider", "slurp", "scrape", "http://", "https://", "www.",
	"headless", "lighthouse", "monitor", "uptime", "pingdom", "preview",
	"fetch", "scan", "check", "probe", "archive", "phantomjs", "selenium",
	"puppeteer", "playwright",
}

func (u *uaClassifier) parse(ua string) uaInfo {
	lower := strings.ToLower(ua)
	for _, p := range u.probes {
		if strings.Contains(lower, p) {
			return uaInfo{browser: FamilyOther, os: FamilyOther, device: DeviceBot, bot: true, probe: true}
		}
	}
	bot := uaInfo{browser: FamilyOther, os: FamilyOther, device: DeviceBot, bot: true}
	// Browsers, and in-app web views, all send "Mozilla/5.0 (...)"; curl,
	// wget, python-requests, Go-http-client, Java, Dalvik app clients and
	// the like do not, and are not visits.
	if !strings.HasPrefix(ua, "Mozilla/") && !strings.HasPrefix(ua, "Opera/") {
		return bot
	}
	for _, w := range botWords {
		if strings.Contains(lower, w) && (w != "bot" || !strings.Contains(lower, "cubot")) {
			return bot
		}
	}
	p := useragent.Parse(ua)
	if p.Bot {
		return bot
	}
	info := uaInfo{browser: browserFamily(p.Name), os: osFamily(p.OS)}
	switch {
	case p.Tablet:
		info.device = DeviceTablet
	case p.Mobile:
		info.device = DeviceMobile
	case p.Desktop:
		info.device = DeviceDesktop
	default:
		info.device = DeviceOther
	}
	return info
}

// browserFamily maps the parser's name to a fixed family list, so that no
// free text from a user agent reaches the statistics.
func browserFamily(name string) string {
	switch name {
	case useragent.Chrome:
		return "Chrome"
	case useragent.Firefox:
		return "Firefox"
	case useragent.Safari, useragent.MobileSafari:
		return "Safari"
	case useragent.Edge:
		return "Edge"
	case useragent.Opera, useragent.OperaMini, useragent.OperaTouch:
		return "Opera"
	case useragent.SamsungBrowser:
		return "Samsung Internet"
	case useragent.InternetExplorer, useragent.Msie:
		return "Internet Explorer"
	case useragent.Vivaldi:
		return "Vivaldi"
	case useragent.FacebookApp, useragent.InstagramApp, useragent.TiktokApp:
		return "In-app browser"
	case "YaBrowser", "Yandex Browser":
		return "Yandex"
	case "UCBrowser", "UC Browser":
		return "UC Browser"
	}
	return FamilyOther
}

func osFamily(name string) string {
	switch name {
	case useragent.Windows, useragent.WindowsNT:
		return "Windows"
	case useragent.MacOS:
		return "macOS"
	case useragent.IOS:
		return "iOS"
	case useragent.Android:
		return "Android"
	case useragent.Linux:
		return "Linux"
	case useragent.ChromeOS, useragent.CrOS:
		return "ChromeOS"
	case useragent.WindowsPhone, useragent.WindowsPhoneOS:
		return "Windows Phone"
	case useragent.Harmony:
		return "HarmonyOS"
	}
	return FamilyOther
}
