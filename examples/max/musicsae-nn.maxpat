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
      980,
      560
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
          "text": "musicsae inside Max: the RAVE, the SAE and a switch per concept in one nn~ model (just demo writes demo_out/nn/demo_steered.ts; put it beside this patch or in Max's search path).",
          "patching_rect": [
            20,
            10,
            900,
            20
          ],
          "numinlets": 1,
          "numoutlets": 0
        }
      },
      {
        "box": {
          "id": "help",
          "maxclass": "comment",
          "text": "set NAME MODE VALUE: modes none off on clamp scale; VALUE = strength for on and clamp, gain for scale. set gate 0|1 keeps every edit off silence (lo hi dBFS: set gate_db). 'get guitar' prints a concept's state. Latency: 2 x buffer - vector + the model's delay.",
          "patching_rect": [
            20,
            35,
            900,
            20
          ],
          "numinlets": 1,
          "numoutlets": 0
        }
      },
      {
        "box": {
          "id": "adc",
          "maxclass": "newobj",
          "text": "adc~ 1",
          "patching_rect": [
            20,
            80,
            50,
            22
          ],
          "numinlets": 1,
          "numoutlets": 1,
          "outlettype": [
            "signal"
          ]
        }
      },
      {
        "box": {
          "id": "nn",
          "maxclass": "newobj",
          "text": "nn~ demo_steered.ts forward 2048",
          "patching_rect": [
            20,
            400,
            220,
            22
          ],
          "numinlets": 1,
          "numoutlets": 2,
          "outlettype": [
            "signal",
            ""
          ]
        }
      },
      {
        "box": {
          "id": "dac",
          "maxclass": "newobj",
          "text": "dac~ 1 2",
          "patching_rect": [
            20,
            450,
            60,
            22
          ],
          "numinlets": 2,
          "numoutlets": 0
        }
      },
      {
        "box": {
          "id": "set0",
          "maxclass": "message",
          "text": "set guitar off 0",
          "patching_rect": [
            120,
            80,
            130,
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
          "id": "set1",
          "maxclass": "message",
          "text": "set guitar on 4",
          "patching_rect": [
            120,
            120,
            130,
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
          "id": "set2",
          "maxclass": "message",
          "text": "set guitar scale 0.5",
          "patching_rect": [
            120,
            160,
            130,
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
          "id": "set3",
          "maxclass": "message",
          "text": "set guitar none 0",
          "patching_rect": [
            120,
            200,
            130,
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
          "id": "set4",
          "maxclass": "message",
          "text": "set drums off 0",
          "patching_rect": [
            270,
            80,
            130,
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
          "id": "set5",
          "maxclass": "message",
          "text": "set drums on 4",
          "patching_rect": [
            270,
            120,
            130,
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
          "id": "set6",
          "maxclass": "message",
          "text": "set drums none 0",
          "patching_rect": [
            270,
            160,
            130,
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
          "id": "set7",
          "maxclass": "message",
          "text": "set mix 0.5",
          "patching_rect": [
            270,
            200,
            130,
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
          "id": "set8",
          "maxclass": "message",
          "text": "set mix 1",
          "patching_rect": [
            420,
            80,
            130,
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
          "id": "set9",
          "maxclass": "message",
          "text": "set bypass 1",
          "patching_rect": [
            420,
            120,
            130,
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
          "id": "set10",
          "maxclass": "message",
          "text": "set bypass 0",
          "patching_rect": [
            420,
            160,
            130,
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
          "id": "set11",
          "maxclass": "message",
          "text": "get guitar",
          "patching_rect": [
            420,
            200,
            130,
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
          "id": "set12",
          "maxclass": "message",
          "text": "set guitar clamp 2",
          "patching_rect": [
            120,
            240,
            130,
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
          "id": "set13",
          "maxclass": "message",
          "text": "set gate_db -60 -45",
          "patching_rect": [
            270,
            240,
            130,
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
          "id": "set14",
          "maxclass": "message",
          "text": "set gate 1",
          "patching_rect": [
            420,
            240,
            130,
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
          "id": "set15",
          "maxclass": "message",
          "text": "set gate 0",
          "patching_rect": [
            420,
            280,
            130,
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
          "id": "meter",
          "maxclass": "newobj",
          "text": "nn~ demo_steered.ts meter 2048",
          "patching_rect": [
            560,
            300,
            210,
            22
          ],
          "numinlets": 1,
          "numoutlets": 3,
          "outlettype": [
            "signal",
            "signal",
            ""
          ]
        }
      },
      {
        "box": {
          "id": "m0",
          "maxclass": "meter~",
          "patching_rect": [
            560,
            340,
            80,
            13
          ],
          "numinlets": 1,
          "numoutlets": 1,
          "outlettype": [
            "float"
          ]
        }
      },
      {
        "box": {
          "id": "m1",
          "maxclass": "meter~",
          "patching_rect": [
            680,
            340,
            80,
            13
          ],
          "numinlets": 1,
          "numoutlets": 1,
          "outlettype": [
            "float"
          ]
        }
      },
      {
        "box": {
          "id": "mlabel",
          "maxclass": "comment",
          "text": "meters: guitar, drums (the bank's calibrated probes, 0 to 1)",
          "patching_rect": [
            560,
            360,
            360,
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
            "set0",
            0
          ],
          "destination": [
            "nn",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "set1",
            0
          ],
          "destination": [
            "nn",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "set2",
            0
          ],
          "destination": [
            "nn",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "set3",
            0
          ],
          "destination": [
            "nn",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "set4",
            0
          ],
          "destination": [
            "nn",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "set5",
            0
          ],
          "destination": [
            "nn",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "set6",
            0
          ],
          "destination": [
            "nn",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "set7",
            0
          ],
          "destination": [
            "nn",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "set8",
            0
          ],
          "destination": [
            "nn",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "set9",
            0
          ],
          "destination": [
            "nn",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "set10",
            0
          ],
          "destination": [
            "nn",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "set11",
            0
          ],
          "destination": [
            "nn",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "adc",
            0
          ],
          "destination": [
            "nn",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "adc",
            0
          ],
          "destination": [
            "meter",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "nn",
            0
          ],
          "destination": [
            "dac",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "nn",
            0
          ],
          "destination": [
            "dac",
            1
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "meter",
            0
          ],
          "destination": [
            "m0",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "meter",
            1
          ],
          "destination": [
            "m1",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "set12",
            0
          ],
          "destination": [
            "nn",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "set13",
            0
          ],
          "destination": [
            "nn",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "set14",
            0
          ],
          "destination": [
            "nn",
            0
          ]
        }
      },
      {
        "patchline": {
          "source": [
            "set15",
            0
          ],
          "destination": [
            "nn",
            0
          ]
        }
      }
    ]
  }
}
