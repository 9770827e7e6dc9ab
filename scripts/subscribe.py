#!/usr/bin/python3
"""Print a commentaryd stream's events: subscribe.py ws://127.0.0.1:8080/v1/streams/demo/events
(Debian: apt-get install python3-websockets; add ?token=TOKEN when the daemon has one)."""
import asyncio, json, sys
import websockets

async def main(url):
    async with websockets.connect(url) as ws:
        async for message in ws:
            ev = json.loads(message)
            if ev["type"] == "commentary":
                print(f'[{ev["t_start"]:7.1f}s] {ev["text"]}  ({ev["latency_ms"]:.0f} ms)', flush=True)
            else:
                print(json.dumps(ev), flush=True)

asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "ws://127.0.0.1:8080/v1/streams/demo/events"))
