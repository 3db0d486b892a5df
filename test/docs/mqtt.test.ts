// The blocks of docs/mqtt.md marked `<!-- run: ID -->`, run against real brokers (test/docs/runners-mqtt.ts).
import { runnerTests } from './context.js';
import { MQTT_RUNNERS } from './runners-mqtt.js';

runnerTests('docs: mqtt.md', MQTT_RUNNERS);
