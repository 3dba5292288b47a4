{
  "patcher": {
    "fileversion": 1,
    "appversion": {
      "major": 8,
      "minor": 5,
      "revision": 0,
      "architecture": "x64",
      "modernui": 1
    },
    "classnamespace": "box",
    "rect": [
      100,
      100,
      860,
      600
    ],
    "bglocked": 0,
    "openinpresentation": 0,
    "default_fontsize": 12.0,
    "gridsize": [
      15.0,
      15.0
    ],
    "boxes": [
      {
        "box": {
          "id": "title",
          "maxclass": "comment",
          "text": "musicsae live engine: OSC control. Click a message to send it. Engine: musicsae live --osc-port 9000 --reply-port 9001",
          "patching_rect": [
            20,
            10,
            700,
            20
          ],
          "numinlets": 1,
          "numoutlets": 0
        }
      },
      {
        "box": {
          "id": "send",
          "maxclass": "newobj",
          "text": "udpsend 127.0.0.1 9000",
          "patching_rect": [
            20,
            520,
            160,
            22
          ],
          "numinlets": 1,
          "numoutlets": 0
        }
      },
      {
        "box": {
          "id": "msg0",
          "maxclass": "message",
          "text": "/reset",
          "patching_rect": [
            20,
            50,
            180,
            22
          ],
          "numinlets": 2,
          "numoutlets": 1,
          "outlettype": [
            ""
          ]
        }
      },
      {
        "box": {
          "id": "msg1",
          "maxclass": "message",
          "text": "/preset/load preset.yaml",
          "patching_rect": [
            220,
            50,
            180,
            22
          ],
          "numinlets": 2,
          "numoutlets": 1,
          "outlettype": [
            ""
          ]
        }
      },
      {
        "box": {
          "id": "msg2",
          "maxclass": "message",
          "text": "/concept/guitar/mode on",
          "patching_rect": [
            420,
            50,
            180,
            22
          ],
          "numinlets": 2,
          "numoutlets": 1,
          "outlettype": [
            ""
          ]
        }
      },
      {
        "box": {
          "id": "msg3",
          "maxclass": "message",
          "text": "/concept/guitar/strength 1.5",
          "patching_rect": [
            620,
            50,
            180,
            22
          ],
          "numinlets": 2,
          "numoutlets": 1,
          "outlettype": [
            ""
          ]
        }
      },
      {
        "box": {
          "id": "msg4",
          "maxclass": "message",
          "text": "/concept/guitar/mode scale",
          "patching_rect": [
            20,
            90,
            180,
            22
          ],
          "numinlets": 2,
          "numoutlets": 1,
          "outlettype": [
            ""
          ]
        }
      },
      {
        "box": {
          "id": "msg5",
          "maxclass": "message",
          "text": "/concept/guitar/gain 0.5",
          "patching_rect": [
            220,
            90,
            180,
            22
          ],
          "numinlets": 2,
          "numoutlets": 1,
          "outlettype": [
            ""
          ]
        }
      },
      {
        "box": {
          "id": "msg6",
          "maxclass": "message",
          "text": "/concept/guitar/mode off",
          "patching_rect": [
            420,
            90,
            180,
            22
          ],
          "numinlets": 2,
          "numoutlets": 1,
          "outlettype": [
            ""
          ]
        }
      },
      {
        "box": {
          "id": "msg7",
          "maxclass": "message",
          "text": "/concept/guitar/mode none",
          "patching_rect": [
            620,
            90,
            180,
            22
          ],
          "numinlets": 2,
          "numoutlets": 1,
          "outlettype": [
            ""
          ]
        }
      },
      {
        "box": {
          "id": "msg8",
          "maxclass": "message",
          "text": "/concept/guitar/mode on:2.",
          "patching_rect": [
            20,
            130,
            180,
            22
          ],
          "numinlets": 2,
          "numoutlets": 1,
          "outlettype": [
            ""
          ]
        }
      },
      {
        "box": {
          "id": "msg9",
          "maxclass": "message",
          "text": "/feature/3/gain 2.",
          "patching_rect": [
            220,
            130,
            180,
            22
          ],
          "numinlets": 2,
          "numoutlets": 1,
          "outlettype": [
            ""
          ]
        }
      },
      {
        "box": {
          "id": "msg10",
          "maxclass": "message",
          "text": "/mix 0.8",
          "patching_rect": [
            420,
            130,
            180,
            22
          ],
          "numinlets": 2,
          "numoutlets": 1,
          "outlettype": [
            ""
          ]
        }
      },
      {
        "box": {
          "id": "msg11",
          "maxclass": "message",
          "text": "/bypass 1",
          "patching_rect": [
            620,
            130,
            180,
            22
          ],
          "numinlets": 2,
          "numoutlets": 1,
          "outlettype": [
            ""
          ]
        }
      },
      {
        "box": {
          "id": "msg12",
          "maxclass": "message",
          "text": "/bypass 0",
          "patching_rect": [
            20,
            170,
            180,
            22
          ],
          "numinlets": 2,
          "numoutlets": 1,
          "outlettype": [
            ""
          ]
        }
      },
      {
        "box": {
          "id": "msg13",
          "maxclass": "message",
          "text": "/state",
          "patching_rect": [
            220,
            170,
            180,
            22
          ],
          "numinlets": 2,
          "numoutlets": 1,
          "outlettype": [
            ""
          ]
        }
      },
      {
        "box": {
          "id": "msg14",
          "maxclass": "message",
          "text": "/concepts",
          "patching_rect": [
            420,
            170,
            180,
            22
          ],
          "numinlets": 2,
          "numoutlets": 1,
          "outlettype": [
            ""
          ]
        }
      },
      {
        "box": {
          "id": "msg15",
          "maxclass": "message",
          "text": "/ping",
          "patching_rect": [
            620,
            170,
            180,
            22
          ],
          "numinlets": 2,
          "numoutlets": 1,
          "outlettype": [
            ""
          ]
        }
      },
      {
        "box": {
          "id": "msg16",
          "maxclass": "message",
          "text": "/preset/save evening",
          "patching_rect": [
            20,
            210,
            180,
            22
          ],
          "numinlets": 2,
          "numoutlets": 1,
          "outlettype": [
            ""
          ]
        }
      },
      {
        "box": {
          "id": "recv",
          "maxclass": "newobj",
          "text": "udpreceive 9001",
          "patching_rect": [
            500,
            470,
            120,
            22
          ],
          "numinlets": 1,
          "numoutlets": 1,
          "outlettype": [
            ""
          ]
        }
      },
      {
        "box": {
          "id": "print",
          "maxclass": "newobj",
          "text": "print musicsae",
          "patching_rect": [
            500,
            520,
            110,
            22
          ],
          "numinlets": 1,
          "numoutlets": 0
        }
      },
      {
        "box": {
          "id": "replies",
          "maxclass": "comment",
          "text": "replies: /pong, /concepts, /state/..., /error",
          "patching_rect": [
            500,
            440,
            300,
            20
          ],
          "numinlets": 1,
          "numoutlets": 0
        }
      }
    ],
    "lines": [
      {
        "patchline": {
          "source": [
            "msg0",
            0
          ],
          "destination": [
            "send",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "msg1",
            0
          ],
          "destination": [
            "send",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "msg2",
            0
          ],
          "destination": [
            "send",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "msg3",
            0
          ],
          "destination": [
            "send",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "msg4",
            0
          ],
          "destination": [
            "send",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "msg5",
            0
          ],
          "destination": [
            "send",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "msg6",
            0
          ],
          "destination": [
            "send",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "msg7",
            0
          ],
          "destination": [
            "send",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "msg8",
            0
          ],
          "destination": [
            "send",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "msg9",
            0
          ],
          "destination": [
            "send",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "msg10",
            0
          ],
          "destination": [
            "send",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "msg11",
            0
          ],
          "destination": [
            "send",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "msg12",
            0
          ],
          "destination": [
            "send",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "msg13",
            0
          ],
          "destination": [
            "send",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "msg14",
            0
          ],
          "destination": [
            "send",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "msg15",
            0
          ],
          "destination": [
            "send",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "recv",
            0
          ],
          "destination": [
            "print",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "msg16",
            0
          ],
          "destination": [
            "send",
            0
          ]
        }
      }
    ]
  }
}
