// MQTT devices for tests: `mqtt` npm clients connected to a test broker's MQTT port, closed together at the end.
import mqtt, { type MqttClient } from 'mqtt';

export class Devices {
  private readonly clients: MqttClient[] = [];

  /** Connects to `node`'s MQTT listener as `clientId` (no reconnects: a test sees every close). */
  async connect(node: { mqttPort?: number | undefined }, clientId: string, options: mqtt.IClientOptions = {}): Promise<MqttClient> {
    const c = await mqtt.connectAsync(`mqtt://127.0.0.1:${node.mqttPort}`, { clientId, reconnectPeriod: 0, ...options });
    this.clients.push(c);
    return c;
  }

  /** Takes a client connected elsewhere into the set closed by closeAll(). */
  add(c: MqttClient): MqttClient {
    this.clients.push(c);
    return c;
  }

  async closeAll(): Promise<void> {
    await Promise.all(this.clients.splice(0).map((c) => c.endAsync(true)));
  }
}

/** Every message `c` receives from now on, as `topic payload` (retained ones marked `(r)`). */
export function inbox(c: MqttClient): string[] {
  const got: string[] = [];
  c.on('message', (t, p, packet) => got.push(`${t} ${p.toString()}${packet.retain ? ' (r)' : ''}`));
  return got;
}
