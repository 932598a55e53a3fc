"""fastlane."""
